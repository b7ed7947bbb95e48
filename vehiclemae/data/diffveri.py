"""Dataset over a ``diffveri`` manifest (or any table with images + per-view RLEs): image, view label map, fg mask.

Each item is a dict::

    image:    float32 (3, S, S), normalised with ``mean``/``std``
    labels:   int64 (S, S), indices into ``view_classes`` (0 = background)
    fg:       float32 (S, S), 1 on vehicle pixels
    identity: int64 (), index of the row's identity_id in ``dataset.identities``
    index:    int64 (), row index in the dataset
    keep_a, keep_b: int64 (Ka,), (Kb,) visible patch indices (only when ``mask_ratio`` is given)

Augmentation and masks are drawn from a generator seeded with ``(seed, epoch, index)`` (call :meth:`set_epoch` before
each epoch), so an item does not depend on the worker, the process or the batch it lands in: resumed and
multi-process runs see exactly the same crops and masks as a straight single-process run.

``vehicle_crop`` (a margin, e.g. 0.1) first cuts each image to its vehicle's box grown by that fraction of the box
size per side (the box of the row's vehicle mask), as Re-ID datasets are detection crops; the random resized crop
is then drawn inside that box. ``None`` uses the whole image.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import torch
from PIL import Image
from torch.utils.data import Dataset

from data_manifests import COLLAPSE_TO_PVEN, VIEW_SETS, inside_root, open_image, read_table, rle

from ..masking import make_masks
from .transforms import IMAGENET_MEAN, IMAGENET_STD, CropParams, apply_joint, flip_lut_for, sample_crop

log = logging.getLogger(__name__)

COLUMNS = ["image_id", "identity_id", "split", "path", "width", "height", "vehicle_rle", "view_classes", "view_rles"]


def resolve_view_classes(view_classes: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """A view-class set by name (``pven``, ``toyworld``) or an explicit tuple starting with ``background``."""
    if isinstance(view_classes, str):
        try:
            return VIEW_SETS[view_classes]
        except KeyError:
            raise KeyError(f"unknown view class set {view_classes!r}; valid: {sorted(VIEW_SETS)}") from None
    classes = tuple(view_classes)
    if not classes or classes[0] != "background":
        raise ValueError(f"view classes must start with 'background', got {classes}")
    return classes


class DiffVERIDataset(Dataset):
    """Rows of a manifest table with ``status == "ok"`` (optionally one split), decoded with joint augmentation."""

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        table: str = "diffveri",
        splits: tuple[str, ...] | list[str] | None = ("train",),
        img_size: int = 224,
        view_classes: str | tuple[str, ...] = "pven",
        augment: bool = True,
        scale: tuple[float, float] = (0.5, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        hflip: float = 0.5,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        seed: int = 0,
        patch_size: int | None = None,
        mask_ratio: float | None = None,
        mask_mode: str = "asymmetric",
        mask_ratio_view: float | None = None,
        limit: int | None = None,
        vehicle_crop: float | None = None,
    ) -> None:
        if vehicle_crop is not None and vehicle_crop < 0:
            raise ValueError(f"vehicle_crop is a margin >= 0 (fraction of the vehicle box), got {vehicle_crop}")
        self.vehicle_crop = vehicle_crop
        self.root = Path(root)
        self.table = table
        self.img_size = img_size
        self.view_classes = resolve_view_classes(view_classes)
        self.augment = augment
        self.scale, self.ratio, self.hflip = tuple(scale), tuple(ratio), hflip
        self.mean = np.asarray(mean, dtype=np.float32).reshape(3, 1, 1)
        self.std = np.asarray(std, dtype=np.float32).reshape(3, 1, 1)
        self.seed = seed
        self.epoch = 0
        self.mask_ratio, self.mask_mode = mask_ratio, mask_mode
        self.mask_ratio_view = mask_ratio_view  # the view branch's own ratio (asymmetric masks); None = mask_ratio
        if mask_ratio is not None:
            if patch_size is None or img_size % patch_size:
                raise ValueError(f"img_size {img_size} must be a multiple of patch_size {patch_size}")
            self.num_patches = (img_size // patch_size) ** 2
        self.flip_lut = flip_lut_for(self.view_classes)

        # 1. Read only the columns we use, only ok rows (failed/rejected rows stay in the table, never here).
        filt = pc.field("status") == "ok"
        if splits:
            filt = filt & pc.field("split").isin(list(splits))
        arrow = read_table(self.root, table, columns=COLUMNS, filter=filt)
        if arrow.num_rows == 0:
            raise ValueError(
                f"{self.root}/manifests/{table}: no rows with status 'ok' in splits {splits}; build the dataset "
                "first (e.g. `diffveri run assemble`) or change `data.splits`"
            )
        arrow = arrow.sort_by("image_id")  # a stable order independent of how the table was written
        if limit:
            arrow = arrow.slice(0, limit)
        self.rows: list[dict[str, Any]] = arrow.to_pylist()
        self.identities: list[str] = sorted({r["identity_id"] for r in self.rows})
        index = {name: i for i, name in enumerate(self.identities)}
        self.identity_index = np.array([index[r["identity_id"]] for r in self.rows], dtype=np.int64)
        # 2. Per distinct row class list, a lookup from the row's mask order to our class indices.
        self._luts: dict[tuple[str, ...], np.ndarray] = {}
        log.info("%s: %d images of %d identities", table, len(self.rows), len(self.identities))

    def __len__(self) -> int:
        return len(self.rows)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's augmentation and masks (items are a pure function of (seed, epoch, index))."""
        self.epoch = int(epoch)

    def _class_lut(self, row_classes: tuple[str, ...], where: str) -> np.ndarray:
        lut = self._luts.get(row_classes)
        if lut is None:
            out = []
            for name in row_classes:
                target = name if name in self.view_classes else COLLAPSE_TO_PVEN.get(name, name)
                if target not in self.view_classes:
                    raise ValueError(
                        f"{where}: view class {name!r} is not in the training classes {self.view_classes}; "
                        "set `data.view_classes` to a set that contains it (e.g. toyworld)"
                    )
                out.append(self.view_classes.index(target))
            lut = self._luts[row_classes] = np.asarray(out, dtype=np.int64)
        return lut

    def load(self, i: int) -> tuple[Image.Image, np.ndarray, np.ndarray]:
        """Row ``i`` at full resolution: PIL RGB image, labels ``(H, W) int64``, fg ``(H, W) bool``."""
        row = self.rows[i]
        where = f"{self.root}/manifests/{self.table} row image_id={row['image_id']!r} ({row['path']})"
        # A manifest path must stay inside the data root; images over the pixel limit are refused undecoded.
        path = inside_root(self.root, row["path"], what=f"{where}: path")
        try:
            with open_image(path) as image:
                image.draft("RGB", (self.img_size, self.img_size))  # JPEG: decode at reduced scale when large
                image = image.convert("RGB")
        except (OSError, ValueError) as exc:
            raise ValueError(f"{where}: cannot read the image ({exc}); fix the file or mark the row failed") from exc
        h, w = row["height"], row["width"]
        if row["view_rles"]:
            local = rle.rles_to_label_map(row["view_rles"])
            labels = self._class_lut(tuple(row["view_classes"]), where)[local]
            h, w = labels.shape
        else:
            labels = np.zeros((h, w), dtype=np.int64)
        fg = rle.decode(row["vehicle_rle"]) if row["vehicle_rle"] is not None else labels > 0
        if image.size != (w, h):  # draft() decoded at a reduced scale, or the masks are stored smaller
            image = image.resize((w, h), Image.BICUBIC)
        return image, labels, fg

    def region(self, fg: np.ndarray) -> tuple[float, float, float, float]:
        """The box ``(x0, y0, x1, y1)`` items are cut from: the vehicle box grown by ``vehicle_crop`` (clipped to the
        image), or the whole image (no ``vehicle_crop``, or an empty mask)."""
        h, w = fg.shape
        if self.vehicle_crop is None or not fg.any():
            return (0.0, 0.0, float(w), float(h))
        rows, cols = np.flatnonzero(fg.any(1)), np.flatnonzero(fg.any(0))
        x0, x1, y0, y1 = float(cols[0]), float(cols[-1] + 1), float(rows[0]), float(rows[-1] + 1)
        mx, my = self.vehicle_crop * (x1 - x0), self.vehicle_crop * (y1 - y0)
        return (max(0.0, x0 - mx), max(0.0, y0 - my), min(float(w), x1 + mx), min(float(h), y1 + my))

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch, i])
        image, labels, fg = self.load(i)
        x0, y0, x1, y1 = self.region(fg)
        if self.augment:
            # Sizes stay fractional (a rounded-up region would let the box leave the image); the whole-image
            # region is integral, so that path draws exactly what it drew before vehicle_crop existed.
            crop = sample_crop(rng, x1 - x0, y1 - y0, self.scale, self.ratio, self.hflip)  # type: ignore[arg-type]
            bx0, by0, bx1, by1 = crop.box
            box = (x0 + bx0, y0 + by0, min(x1, x0 + bx1), min(y1, y0 + by1))
            params: CropParams | None = CropParams(box, crop.flip)
        else:
            params = None if self.vehicle_crop is None else CropParams((x0, y0, x1, y1), False)
        img, lab, fgm = apply_joint(image, labels, fg, params, self.img_size, self.flip_lut)
        chw = (img.transpose(2, 0, 1).astype(np.float32) / 255.0 - self.mean) / self.std
        item = {
            "image": torch.from_numpy(chw),
            "labels": torch.from_numpy(lab),
            "fg": torch.from_numpy(fgm),
            "identity": torch.tensor(self.identity_index[i]),
            "index": torch.tensor(i),
        }
        if self.mask_ratio is not None:
            gen = torch.Generator().manual_seed(int(rng.integers(0, 2**62)))
            keep_a, keep_b = make_masks(
                self.mask_mode, 1, self.num_patches, self.mask_ratio, gen, mask_ratio_b=self.mask_ratio_view
            )
            item["keep_a"], item["keep_b"] = keep_a[0], keep_b[0]
        return item
