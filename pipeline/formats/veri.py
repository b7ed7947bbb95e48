"""The VeRi-776 layout::

    DIR/image_train/0001_c001_00000000_0.jpg   {vid:04d}_c{camera:03d}_{frame:08d}_0.jpg
    DIR/image_query/...                         the queries
    DIR/image_test/...                          the gallery *and* the queries, as in VeRi-776
    DIR/name_{train,query,test}.txt             the file names of each folder, sorted, one a line

VeRi-776 evaluation ignores a query's same-vid images on its own camera (junk), so every query needs a gallery
image of its vid on another camera (:func:`pipeline.splits.assign_query_gallery` guarantees it) and a query finds
itself in ``image_test`` only as junk. ``vehiclemae.reid.data`` reads this layout back.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import data_manifests as dm

FOLDERS: tuple[str, ...] = ("image_train", "image_query", "image_test")
FOLDERS_OF_SPLIT: dict[str, tuple[str, ...]] = {
    "train": ("image_train",),
    "query": ("image_query", "image_test"),
    "gallery": ("image_test",),
}


def veri_name(vid: int, camera: int, frame: int) -> str:
    """The VeRi-776 file name of image ``frame`` of vehicle ``vid`` on ``camera``."""
    return f"{vid:04d}_c{camera:03d}_{frame:08d}_0.jpg"


class VeriWriter:
    """Adds images to a VeRi-776 folder being written (use :func:`veri_writer`)."""

    def __init__(self, folder: Path, quality: int = 95) -> None:
        self.folder = folder
        self.quality = quality
        self.names: dict[str, list[str]] = defaultdict(list)

    def add(
        self,
        source: Path,
        vid: int,
        camera: int,
        frame: int,
        split: str,
        box: tuple[int, int, int, int] | None = None,
    ) -> str:
        """Write ``source`` (cut to ``box`` when given) as a JPEG into the folders of ``split``; returns its name."""
        if split not in FOLDERS_OF_SPLIT:
            raise ValueError(f"split must be one of {sorted(FOLDERS_OF_SPLIT)}, got {split!r}")
        if vid < 1 or camera < 1 or frame < 0:
            # readers take vid 0 / -1 for junk and distractor images; a real vehicle must not look like one
            raise ValueError(f"{source}: VeRi vids and cameras start at 1, frames at 0; got {vid}, {camera}, {frame}")
        name = veri_name(vid, camera, frame)
        with dm.open_image(source) as image:
            rgb = image.convert("RGB")
        buffer = io.BytesIO()
        (rgb if box is None else rgb.crop(box)).save(buffer, format="JPEG", quality=self.quality)
        for folder in FOLDERS_OF_SPLIT[split]:
            (self.folder / folder).mkdir(exist_ok=True)
            (self.folder / folder / name).write_bytes(buffer.getvalue())
            self.names[folder].append(name)
        return name

    def write_text(self, name: str, text: str) -> None:
        """An extra file beside the image folders (e.g. the toy world's ``toyworld_meta.json``)."""
        (self.folder / name).write_text(text)

    def finish(self) -> None:
        for folder in FOLDERS:
            (self.folder / folder).mkdir(exist_ok=True)
            listing = folder.replace("image_", "name_") + ".txt"
            (self.folder / listing).write_text("".join(f"{n}\n" for n in sorted(self.names[folder])))


@contextmanager
def veri_writer(dest: Path, quality: int = 95) -> Iterator[VeriWriter]:
    """Write the VeRi-776 folder ``dest``: filled under a temporary name, swapped in whole when the block ends."""
    with dm.atomic_dir(Path(dest)) as tmp:
        writer = VeriWriter(tmp, quality)
        yield writer
        writer.finish()


__all__ = ["FOLDERS", "FOLDERS_OF_SPLIT", "VeriWriter", "veri_name", "veri_writer"]
