"""Vehicle Re-ID datasets: the official VeRi-776 and VehicleID folder layouts, and an image dataset over them.

VeRi-776 (Liu et al., 2016)::

    ROOT/image_train/0001_c001_00016450_0.jpg   {vehicle id}_c{camera}_{frame}_{n}.jpg
    ROOT/image_query/...                        1678 queries
    ROOT/image_test/...                         11579 gallery images

VehicleID (Liu et al., 2016)::

    ROOT/image/0000001.jpg
    ROOT/train_test_split/train_list.txt        lines "0000001 1" (image name without extension, vehicle id)
    ROOT/train_test_split/test_list_800.txt     and test_list_1600.txt, test_list_2400.txt (the toy world writes
                                                smaller sizes; every test_list_N.txt found is offered)

The toy world (``diffveri toy world``) writes both layouts under ``DIR/VeRi/`` and ``DIR/VehicleID_V1.0/``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from data_manifests import open_image

VERI_FOLDERS = {"train": "image_train", "query": "image_query", "gallery": "image_test"}
VERI_NAME = re.compile(r"^(\d+)_c(\d+)_.*\.(?:jpg|jpeg|png)$", re.IGNORECASE)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class ReIDSample:
    """One image: its path, vehicle id (as in the files) and camera (VehicleID has none: 0)."""

    path: Path
    pid: int
    camid: int


@dataclass
class ReIDSplit:
    """A train/query/gallery split; ``train`` ids are the raw ids (relabel with :func:`relabel`)."""

    name: str
    root: Path
    train: list[ReIDSample]
    query: list[ReIDSample]
    gallery: list[ReIDSample]

    def summary(self) -> str:
        def ids(samples: list[ReIDSample]) -> int:
            return len({s.pid for s in samples})

        return (
            f"{self.name} at {self.root}: train {len(self.train)} images / {ids(self.train)} ids, "
            f"query {len(self.query)} / {ids(self.query)}, gallery {len(self.gallery)} / {ids(self.gallery)}"
        )


def _hint_for(root: Path, expected: str) -> str:
    """Suggest a sub-folder that has the expected layout (a common mistake: passing the parent folder)."""
    if root.is_dir():
        for child in sorted(root.iterdir()):
            if (child / expected).exists():
                return f"; did you mean --root {child}?"
    return ""


def parse_veri_folder(folder: Path, relabel_junk: bool = False) -> list[ReIDSample]:
    """All images of one VeRi-776 folder, sorted by name. Ids < 0 (distractors) are skipped unless asked."""
    samples = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        match = VERI_NAME.match(path.name)
        if match is None:
            raise ValueError(
                f"{path}: not a VeRi-776 image name; expected '{{vehicle id}}_c{{camera}}_{{frame}}_{{n}}.jpg' "
                "such as 0001_c001_00016450_0.jpg"
            )
        pid, cam = int(match.group(1)), int(match.group(2))
        if pid >= 0 or relabel_junk:
            samples.append(ReIDSample(path, pid, cam))
    return samples


def load_veri776(root: str | Path) -> ReIDSplit:
    """Parse a VeRi-776 root (``image_train/``, ``image_query/``, ``image_test/``)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"VeRi-776 root {root} does not exist")
    missing = [f for f in VERI_FOLDERS.values() if not (root / f).is_dir()]
    if missing:
        raise FileNotFoundError(
            f"{root} is not a VeRi-776 root: missing {', '.join(missing)} (expected image_train/, image_query/, "
            f"image_test/){_hint_for(root, 'image_query')}"
        )
    parts = {split: parse_veri_folder(root / folder) for split, folder in VERI_FOLDERS.items()}
    for split, samples in parts.items():
        if not samples:
            raise ValueError(f"{root / VERI_FOLDERS[split]} holds no images")
    return ReIDSplit("veri776", root, parts["train"], parts["query"], parts["gallery"])


def _read_list(path: Path, image_dir: Path) -> list[ReIDSample]:
    samples = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2 or not fields[1].lstrip("-").isdigit():
            raise ValueError(f"{path}:{lineno}: expected '<image name> <vehicle id>', got {line!r}")
        name = fields[0]
        image = image_dir / name if Path(name).suffix else image_dir / f"{name}.jpg"
        samples.append(ReIDSample(image, int(fields[1]), 0))
    if not samples:
        raise ValueError(f"{path} lists no images")
    missing = [s.path for s in samples[:1000] if not s.path.is_file()]
    if missing:
        raise FileNotFoundError(f"{path}: listed image {missing[0]} does not exist ({len(missing)}+ missing)")
    return samples


def vehicleid_test_sizes(root: str | Path) -> list[int]:
    """The test sizes a VehicleID root offers (``test_list_N.txt``), ascending."""
    split_dir = Path(root) / "train_test_split"
    sizes = []
    for path in split_dir.glob("test_list_*.txt"):
        tail = path.stem.rsplit("_", 1)[-1]
        if tail.isdigit():
            sizes.append(int(tail))
    return sorted(sizes)


@dataclass
class VehicleIDSplit:
    """VehicleID: the training list and one test list (query/gallery are drawn per trial by the protocol)."""

    root: Path
    train: list[ReIDSample]
    test: list[ReIDSample]
    test_size: int


def load_vehicleid(root: str | Path, test_size: int | None = None) -> VehicleIDSplit:
    """Parse a VehicleID root; ``test_size`` picks ``test_list_{N}.txt`` (default: the smallest offered)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"VehicleID root {root} does not exist")
    split_dir, image_dir = root / "train_test_split", root / "image"
    if not split_dir.is_dir() or not image_dir.is_dir():
        raise FileNotFoundError(
            f"{root} is not a VehicleID root: expected image/ and train_test_split/ (train_list.txt, "
            f"test_list_800.txt, ...){_hint_for(root, 'train_test_split')}"
        )
    sizes = vehicleid_test_sizes(root)
    if not sizes:
        raise FileNotFoundError(f"{split_dir} has no test_list_N.txt")
    size = sizes[0] if test_size is None else int(test_size)
    if size not in sizes:
        raise ValueError(f"{split_dir} has no test_list_{size}.txt; available test sizes: {sizes}")
    train_list = split_dir / "train_list.txt"
    if not train_list.is_file():
        raise FileNotFoundError(f"{train_list} does not exist")
    return VehicleIDSplit(
        root, _read_list(train_list, image_dir), _read_list(split_dir / f"test_list_{size}.txt", image_dir), size
    )


def relabel(samples: list[ReIDSample]) -> tuple[np.ndarray, dict[int, int]]:
    """Contiguous training labels ``(N,) int64`` in ``[0, num_ids)`` (sorted raw ids), and the raw->label map."""
    mapping = {pid: i for i, pid in enumerate(sorted({s.pid for s in samples}))}
    return np.array([mapping[s.pid] for s in samples], dtype=np.int64), mapping


class ReIDImageDataset(Dataset):
    """Images with labels for training or feature extraction.

    Items are dicts: ``image`` ``(3, H, W)`` float (after ``transform``), ``label`` (int64: the training label if
    ``labels`` is given, else the raw id), ``camid`` (int64) and ``index`` (int64, position in ``samples``).
    ``labels`` may be replaced later (``set_labels``) — unsupervised training swaps in pseudo labels each epoch.
    """

    def __init__(
        self,
        samples: list[ReIDSample],
        transform: Callable[[Image.Image], torch.Tensor],
        labels: np.ndarray | None = None,
    ) -> None:
        self.samples = samples
        self.transform = transform
        self.labels = np.array([s.pid for s in samples], dtype=np.int64) if labels is None else np.asarray(labels)
        if len(self.labels) != len(samples):
            raise ValueError(f"{len(self.labels)} labels for {len(samples)} samples")

    def set_labels(self, labels: np.ndarray) -> None:
        if len(labels) != len(self.samples):
            raise ValueError(f"{len(labels)} labels for {len(self.samples)} samples")
        self.labels = np.asarray(labels)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        sample = self.samples[i]
        try:
            with open_image(sample.path) as handle:  # refuses images over the pixel limit undecoded
                image = handle.convert("RGB")
        except OSError as exc:
            raise OSError(f"cannot read image {sample.path}: {exc}") from exc
        return {
            "image": self.transform(image),
            "label": torch.tensor(int(self.labels[i]), dtype=torch.int64),
            "camid": torch.tensor(sample.camid, dtype=torch.int64),
            "index": torch.tensor(i, dtype=torch.int64),
        }


def build_transforms(
    img_size: int, train: bool, mean: tuple[float, ...], std: tuple[float, ...], hflip: float = 0.5
) -> Callable:
    """Re-ID transforms (TransReID-style): resize, and for training flip (probability ``hflip``) + pad/crop + random
    erasing."""
    from torchvision import transforms as T

    ops: list = [T.Resize((img_size, img_size), interpolation=T.InterpolationMode.BICUBIC)]
    if train:
        pad = max(1, img_size // 16)
        if hflip > 0:
            ops.append(T.RandomHorizontalFlip(hflip))
        ops += [T.Pad(pad), T.RandomCrop((img_size, img_size))]
    ops += [T.ToTensor(), T.Normalize(mean, std)]
    if train:
        ops.append(T.RandomErasing(p=0.5, value=0))
    return T.Compose(ops)
