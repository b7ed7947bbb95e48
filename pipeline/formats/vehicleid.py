"""The VehicleID layout::

    DIR/image/0000001.jpg                       images numbered in the order they are added
    DIR/train_test_split/train_list.txt         lines "<image name> <vid>" (name without extension)
    DIR/train_test_split/test_list_<n>.txt      the same for the first n test vids; the lists are nested
    DIR/attribute/model_attr.txt                lines "<vid> <model id>"
    DIR/attribute/color_attr.txt                lines "<vid> <colour id>"

VehicleID's photos show the front or the rear of a vehicle (three-quarter views included), never the pure side or
the top: :data:`VEHICLEID_VIEWS` is what may enter. ``vehiclemae.reid.data`` reads this layout back.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import data_manifests as dm

VEHICLEID_VIEWS = frozenset({"front", "rear", "front_left", "front_right", "rear_left", "rear_right"})
ATTRIBUTES: tuple[str, ...] = ("model_attr", "color_attr")


def vehicleid_test_sizes(n_test: int) -> list[int]:
    """Test-list sizes scaled from VehicleID's 800/1600/2400 (of 2400): a third, two thirds and all test vids."""
    return sorted({max(1, round(n_test * k / 3)) for k in (1, 2, 3)})


class VehicleIDWriter:
    """Adds images to a VehicleID folder being written (use :func:`vehicleid_writer`)."""

    def __init__(self, folder: Path, quality: int = 95) -> None:
        self.folder = folder
        self.quality = quality
        self.lines: dict[int, list[str]] = defaultdict(list)
        (folder / "train_test_split").mkdir()
        (folder / "attribute").mkdir()

    def add(self, source: Path, vid: int, view: str, box: tuple[int, int, int, int] | None = None) -> str | None:
        """Write ``source`` (cut to ``box`` when given) as the next numbered image of ``vid``; returns its name, or
        None for a view VehicleID never shows (the image is left out)."""
        if view not in VEHICLEID_VIEWS:
            return None
        if vid < 1:
            raise ValueError(f"{source}: VehicleID vids start at 1, got {vid}")
        name = f"{sum(len(v) for v in self.lines.values()) + 1:07d}"
        with dm.open_image(source) as image:
            rgb = image.convert("RGB")
        buffer = io.BytesIO()
        (rgb if box is None else rgb.crop(box)).save(buffer, format="JPEG", quality=self.quality)
        (self.folder / "image").mkdir(exist_ok=True)
        (self.folder / "image" / f"{name}.jpg").write_bytes(buffer.getvalue())
        self.lines[vid].append(f"{name} {vid}\n")
        return name

    def write_splits(self, train: Sequence[int], test: Sequence[int]) -> None:
        """``train_list.txt`` and the nested ``test_list_<n>.txt`` (the smaller lists hold the first test vids);
        vids in the given order, those without images skipped."""
        train = [vid for vid in train if vid in self.lines]
        test = [vid for vid in test if vid in self.lines]
        split = self.folder / "train_test_split"
        (split / "train_list.txt").write_text("".join(x for vid in train for x in self.lines[vid]))
        for n in vehicleid_test_sizes(len(test)):
            (split / f"test_list_{n}.txt").write_text("".join(x for vid in test[:n] for x in self.lines[vid]))

    def write_attribute(self, name: str, values: Mapping[int, int]) -> None:
        """``attribute/<name>.txt``: one ``<vid> <value id>`` line per vid, by vid."""
        if name not in ATTRIBUTES:
            raise ValueError(f"VehicleID attribute files are {ATTRIBUTES}, got {name!r}")
        (self.folder / "attribute" / f"{name}.txt").write_text("".join(f"{v} {values[v]}\n" for v in sorted(values)))


@contextmanager
def vehicleid_writer(dest: Path, quality: int = 95) -> Iterator[VehicleIDWriter]:
    """Write the VehicleID folder ``dest``: filled under a temporary name, swapped in whole when the block ends."""
    with dm.atomic_dir(Path(dest)) as tmp:
        yield VehicleIDWriter(tmp, quality)


__all__ = ["ATTRIBUTES", "VEHICLEID_VIEWS", "VehicleIDWriter", "vehicleid_test_sizes", "vehicleid_writer"]
