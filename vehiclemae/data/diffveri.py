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

Memory at scale: the manifest columns are streamed once (``data_manifests.iter_batches``) into flat files in a private
cache folder (:mod:`.rowstore`; ``cache_dir``, default ``$VEHICLEMAE_DATA_CACHE`` or the system temp folder, a
``vehiclemae-rows-*`` folder removed when the dataset is garbage collected; a killed process leaves it behind), with
the ``image_id`` order and each row's identity index as raw ``int64`` files. No per-row Python object exists: a row is
decoded from the files when an item asks for it (:meth:`DiffVERIDataset.row`). DataLoader workers get a pickle of
under 1 kB and read the same files, so the rows live once in the page cache, not once per process
(``benchmarks/bench_loader_scale.py``: 1.7M rows).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from PIL import Image
from torch.utils.data import Dataset

from data_manifests import COLLAPSE_TO_PVEN, VIEW_SETS, Status, inside_root, iter_batches, open_image, rle, seeds

from ..masking import make_masks
from .rowstore import RawFile, RowStore, RowStoreWriter
from .transforms import IMAGENET_MEAN, IMAGENET_STD, CropParams, apply_joint, flip_lut_for, sample_crop

log = logging.getLogger(__name__)

COLUMNS = ["image_id", "identity_id", "split", "path", "width", "height", "vehicle_rle", "view_classes", "view_rles"]
CACHE_ENV = "VEHICLEMAE_DATA_CACHE"
ROWS_DIR, ORDER_FILE, IDENTITY_FILE, IDENTITIES_FILE = "rows", "order.int64", "identity.int64", "identities.json"


class _CacheDir:
    """Owns the folder of a dataset's row files; shallow copies share it, the folder goes with the last of them.
    Worker processes receive the path only (pickles never carry this owner), so they never delete it."""

    def __init__(self, parent: str | os.PathLike | None) -> None:
        parent = parent or os.environ.get(CACHE_ENV) or None
        if parent is not None:
            Path(parent).mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix="vehiclemae-rows-", dir=parent))
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(self.path), True)


def build_row_store(
    root: Path, table: str, filt: pc.Expression, limit: int | None, directory: Path
) -> tuple[int, list[str]]:
    """Stream the matching rows of ``table`` into ``directory``: a :class:`~.rowstore.RowStore` (scan order),
    ``order.int64`` (dataset index -> store row, by ``image_id``, cut to ``limit``), ``identity.int64`` (dataset
    index -> index into the returned sorted identity list) and ``identities.json``. Returns ``(rows, identities)``;
    memory holds one batch plus the two id columns."""
    ids, identities = [], []
    writer = None
    for batch in iter_batches(root, table, columns=COLUMNS, filter=filt):
        if writer is None:
            writer = RowStoreWriter(directory / ROWS_DIR, batch.schema)
        writer.write_batch(batch)
        ids.append(batch.column("image_id"))
        identities.append(batch.column("identity_id"))
    if writer is None:
        return 0, []
    writer.close()
    # 1. A stable order independent of how the table was written (image ids are unique keys).
    order = pc.sort_indices(pa.chunked_array(ids, type=pa.string())).to_numpy().astype(np.int64)
    del ids
    if limit:
        order = order[:limit]
    # 2. Identities of the rows kept, sorted; each row's index into them.
    kept = pa.chunked_array(identities, type=pa.string()).take(pa.array(order))
    del identities
    names = sorted(pc.unique(kept).to_pylist())
    codes = pc.index_in(kept, value_set=pa.array(names, type=pa.string())).to_numpy().astype(np.int64)
    order.tofile(directory / ORDER_FILE)
    codes.tofile(directory / IDENTITY_FILE)
    (directory / IDENTITIES_FILE).write_text(json.dumps(names))
    pa.default_memory_pool().release_unused()  # the id columns and batches go back to the system
    return len(order), names


class RowView(Sequence):
    """``dataset.rows[i]``: row ``i`` as a dict, decoded on demand (no list of rows is ever built)."""

    def __init__(self, dataset: DiffVERIDataset) -> None:
        self._dataset = dataset

    def __len__(self) -> int:
        return len(self._dataset)

    def __getitem__(self, i: int) -> dict[str, Any]:  # type: ignore[override]
        return self._dataset.row(i)


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
        cache_dir: str | os.PathLike | None = None,
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

        # 1. Only the columns we use, only ok rows (failed/rejected rows stay in the table, never here), streamed to
        #    flat files: no per-row Python objects, and workers read the same files.
        filt = pc.field("status") == Status.OK
        if splits:
            filt = filt & pc.field("split").isin(list(splits))
        self._cache = _CacheDir(cache_dir)
        self._files = self._cache.path
        n, self._identities = build_row_store(self.root, table, filt, limit, self._files)
        if n == 0:
            raise ValueError(
                f"{self.root}/manifests/{table}: no rows with status 'ok' in splits {splits}; build the dataset "
                "first (e.g. `diffveri run assemble`) or change `data.splits`"
            )
        self._n = n
        self._open()
        # 2. Per distinct row class list, a lookup from the row's mask order to our class indices.
        self._luts: dict[tuple[str, ...], np.ndarray] = {}
        log.info("%s: %d images of %d identities", table, n, len(self.identities))

    def _open(self) -> None:
        """Open the row files (in the building process, and in each worker after unpickling)."""
        self._store = RowStore(self._files / ROWS_DIR)
        self._order = RawFile(str(self._files / ORDER_FILE), np.dtype(np.int64))
        self._identity = RawFile(str(self._files / IDENTITY_FILE), np.dtype(np.int64))

    def __getstate__(self) -> dict[str, Any]:
        # Workers get the folder's path, not the rows (and not the owner: only the building process deletes it).
        state = self.__dict__.copy()
        for key in ("_store", "_order", "_identity", "_cache", "_identities"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._open()

    def __copy__(self) -> DiffVERIDataset:
        # A shallow copy (e.g. the collapse probe's un-augmented view) shares the row files and their owner.
        new = self.__class__.__new__(self.__class__)
        new.__dict__.update(self.__dict__)
        return new

    @property
    def identities(self) -> list[str]:
        """The sorted identity ids of the rows (``item["identity"]`` indexes this list)."""
        if self.__dict__.get("_identities") is None:  # a worker's copy reads them only when asked
            self._identities = json.loads((self._files / IDENTITIES_FILE).read_text())
        return self._identities

    @property
    def rows(self) -> RowView:
        """Rows as dicts, each decoded when indexed (``dataset.rows[i] == dataset.row(i)``)."""
        return RowView(self)

    def row(self, i: int) -> dict[str, Any]:
        """Row ``i`` (``image_id`` order) as a dict of the manifest columns, as ``read_rows`` would give it."""
        if not -self._n <= i < self._n:
            raise IndexError(f"row {i} out of range for {self._n} rows")
        i = i + self._n if i < 0 else i
        return self._store.row(int(self._order.read(i, i + 1)[0]))

    @property
    def identity_index(self) -> np.ndarray:
        """``(N,) int64``: each row's index into :attr:`identities` (read from disk on each call)."""
        return np.fromfile(self._files / IDENTITY_FILE, dtype=np.int64)

    def __len__(self) -> int:
        return self._n

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
        row = self.row(i)
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
        rng = seeds.rng(self.seed, "pretrain.diffveri.item", self.epoch, i)
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
            "identity": torch.tensor(self._identity.read(i, i + 1)[0]),
            "index": torch.tensor(i),
        }
        if self.mask_ratio is not None:
            gen = torch.Generator().manual_seed(int(rng.integers(0, 2**62)))
            keep_a, keep_b = make_masks(
                self.mask_mode, 1, self.num_patches, self.mask_ratio, gen, mask_ratio_b=self.mask_ratio_view
            )
            item["keep_a"], item["keep_b"] = keep_a[0], keep_b[0]
        return item
