"""Tiny VeRi-776 / VehicleID folder layouts drawn with numpy + PIL (identity = colour pattern, camera = offset).

Why not the toy world's exports (``diffveri toy world``: ``VeRi/``, ``VehicleID_V1.0/``): the parser, protocol and
metric tests need chosen ids, cameras and counts (``{pid:04d}_c{cam:03d}_...`` names, one query per id on camera 1,
nested test lists) and 32-px images that cost nothing to write; the toy world picks cameras by view and splits by
family.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def vehicle_image(pid: int, cam: int, n: int, size: int = 32) -> Image.Image:
    """An image whose colours are set by ``pid`` (learnable identity) and whose box position by ``(cam, n)``."""
    rng = np.random.default_rng([pid, 7])
    colours = rng.integers(30, 226, size=(2, 3))
    img = np.full((size, size, 3), 127, dtype=np.uint8)
    off = (cam * 3 + n) % (size // 4)
    img[off : off + size // 2, off : off + size // 2] = colours[0]
    img[size // 2 :, size // 2 :] = colours[1]
    noise = np.random.default_rng([pid, cam, n]).integers(-12, 13, size=img.shape)
    return Image.fromarray(np.clip(img.astype(int) + noise, 0, 255).astype(np.uint8))


def make_veri(root: Path, train_ids: int = 6, test_ids: int = 5, cams: int = 3, per_cam: int = 2) -> Path:
    """Write ``root/image_{train,query,test}``: train ids 1.., test ids after them; one query per id and camera 1."""
    for folder in ("image_train", "image_query", "image_test"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for pid in range(1, train_ids + test_ids + 1):
        for cam in range(1, cams + 1):
            for n in range(per_cam):
                name = f"{pid:04d}_c{cam:03d}_{n:08d}_0.jpg"
                if pid <= train_ids:
                    folder = "image_train"
                else:
                    folder = "image_query" if (cam == 1 and n == 0) else "image_test"
                vehicle_image(pid, cam, n).save(root / folder / name)
    return root


def make_vehicleid(root: Path, train_ids: int = 6, test_ids: int = 8, per_id: int = 4, sizes=(4, 8)) -> Path:
    """Write ``root/image/`` and ``root/train_test_split/{train_list,test_list_N}.txt``."""
    (root / "image").mkdir(parents=True, exist_ok=True)
    (root / "train_test_split").mkdir(parents=True, exist_ok=True)
    lines: dict[int, list[str]] = {}
    counter = 0
    for pid in range(1, train_ids + test_ids + 1):
        for n in range(per_id):
            counter += 1
            name = f"{counter:07d}"
            vehicle_image(pid, 0, n).save(root / "image" / f"{name}.jpg")
            lines.setdefault(pid, []).append(f"{name} {pid}")
    train = [x for pid in range(1, train_ids + 1) for x in lines[pid]]
    (root / "train_test_split" / "train_list.txt").write_text("\n".join(train) + "\n")
    for size in sizes:
        test = [x for pid in range(train_ids + 1, train_ids + 1 + size) for x in lines[pid]]
        (root / "train_test_split" / f"test_list_{size}.txt").write_text("\n".join(test) + "\n")
    return root
