"""A YOLO detection dataset, as ultralytics reads it::

DIR/images/{train,val}/<name>.jpg
DIR/labels/{train,val}/<name>.txt     one "cls cx cy w h" line per object (box centre and size, normalised)
DIR/data.yaml                         train/val folders relative to the file, and the class names
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

import data_manifests as dm

SPLITS: tuple[str, ...] = ("train", "val")


def label_line(cls: int, box: Sequence[float], width: int, height: int) -> str:
    """The YOLO label line of pixel box ``(x1, y1, x2, y2)`` of class ``cls`` in a ``width`` x ``height`` image."""
    x1, y1, x2, y2 = box
    cx, cy, w, h = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height
    return f"{cls} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}"


def data_yaml(names: Sequence[str], comments: Sequence[str] = ()) -> str:
    """The text of ``data.yaml``: ``comments`` (without ``#``) first, then the folders and the class names."""
    lines = [*(f"# {c}" for c in comments), "train: images/train", "val: images/val", "names:"]
    lines += [f"  {i}: {n}" for i, n in enumerate(names)]
    return "\n".join(lines) + "\n"


class YoloWriter:
    """Adds images to a YOLO dataset being written (use :func:`yolo_writer`)."""

    def __init__(self, folder: Path, quality: int = 95) -> None:
        self.folder = folder
        self.quality = quality

    def add(self, split: str, name: str, image: np.ndarray, lines: Sequence[str]) -> str:
        """Write ``image`` ``(H, W, 3)`` uint8 as ``images/<split>/<name>.jpg`` and its label ``lines``; returns the
        image's path relative to the dataset folder."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=self.quality)
        (self.folder / "images" / split).mkdir(parents=True, exist_ok=True)
        (self.folder / "labels" / split).mkdir(parents=True, exist_ok=True)
        (self.folder / "images" / split / f"{name}.jpg").write_bytes(buffer.getvalue())
        (self.folder / "labels" / split / f"{name}.txt").write_text("".join(f"{line}\n" for line in lines))
        return f"images/{split}/{name}.jpg"

    def write_text(self, name: str, text: str) -> None:
        """A file beside ``images/`` and ``labels/`` (e.g. the toy world's ``scenes.jsonl``)."""
        (self.folder / name).write_text(text)


@contextmanager
def yolo_writer(
    dest: Path, names: Sequence[str], comments: Sequence[str] = (), quality: int = 95
) -> Iterator[YoloWriter]:
    """Write the YOLO dataset ``dest`` with class ``names`` (``data.yaml`` starts with ``comments``): filled under a
    temporary name, swapped in whole when the block ends."""
    with dm.atomic_dir(Path(dest)) as tmp:
        yield YoloWriter(tmp, quality)
        (tmp / "data.yaml").write_text(data_yaml(names, comments))


__all__ = ["SPLITS", "YoloWriter", "data_yaml", "label_line", "yolo_writer"]
