"""The pictures of ``docs/review-guide.md``, rendered from the toy world.

python -m pipeline.review.guide_images docs/img     # writes docs/img/review_*.png (4 figures)
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from data_manifests import INTENDED_VIEWS, atomic_write_bytes, seeds

TILE = 192
LABEL_H = 22


def _font() -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=15)
    except TypeError:  # old Pillow without sized default font
        return ImageFont.load_default()


def _grid(tiles: list[tuple[np.ndarray, str]], cols: int) -> Image.Image:
    rows = (len(tiles) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * TILE, rows * (TILE + LABEL_H)), "white")
    draw, font = ImageDraw.Draw(sheet), _font()
    for i, (img, label) in enumerate(tiles):
        x, y = (i % cols) * TILE, (i // cols) * (TILE + LABEL_H)
        sheet.paste(Image.fromarray(img).resize((TILE - 8, TILE - 8), Image.NEAREST), (x + 4, y + 4))
        draw.text((x + 6, y + TILE - 2), label, fill="black", font=font)
    return sheet


def _save(img: Image.Image, path: Path) -> None:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    atomic_write_bytes(path, buf.getvalue())


def write_guide_images(out_dir: Path, seed: int = 0, index: int = 29, other_index: int = 18) -> list[Path]:
    """Render the guide's figures into ``out_dir``; returns the written paths."""
    from pipeline.toyworld import VIEW_ANGLES, render, sample_identity
    from pipeline.toyworld.detection import render_scene

    out_dir = Path(out_dir)
    # Two light-coloured sedans of the default world (dark vehicles are hard to see in a small picture).
    ident, other = sample_identity(seed=seed, index=index), sample_identity(seed=seed, index=other_index)
    paths = []

    # 1. The nine view labels.
    tiles = [(render(ident, *VIEW_ANGLES[v], size=128, seed=7).image, v) for v in INTENDED_VIEWS]
    paths.append(out_dir / "review_views.png")
    _save(_grid(tiles, 3), paths[-1])

    # 2. Identity: reference, same vehicle from another side (yes), a look-alike of the same class (no).
    ref = render(ident, 30.0, 15.0, size=128, seed=1).image
    same = render(ident, 200.0, 25.0, size=128, seed=2).image
    diff = render(other, 30.0, 15.0, size=128, seed=1).image
    paths.append(out_dir / "review_identity.png")
    _save(_grid([(ref, "reference"), (same, "identity_ok: yes"), (diff, "identity_ok: no")], 3), paths[-1])

    # 3. Reasons to reject: two vehicles, cut by the border, occluded.
    rng = seeds.rng(seed, "review.guide_images")
    two = None
    for _ in range(200):
        scene = render_scene([ident, other], 128, rng)
        if len(scene.vehicles) >= 2:
            two = scene.image
            break
    full = render(ident, 60.0, 10.0, size=128, seed=3).image
    # A window whose left edge runs through the vehicle: the picture a generator makes when it frames badly.
    cut = np.asarray(Image.fromarray(full).crop((54, 14, 128, 88)).resize((128, 128), Image.BILINEAR))
    occluded = render(ident, 300.0, 15.0, size=128, seed=11, occluders=True).image
    tiles = [
        (two if two is not None else full, "reject: two vehicles"),
        (cut, "reject: cut off"),
        (occluded, "unsure/reject: occluded"),
    ]
    paths.append(out_dir / "review_reject.png")
    _save(_grid(tiles, 3), paths[-1])

    # 4. A contact-sheet row once the images are segmented: candidate, reference, view masks (exact toy masks).
    from data_manifests import VIEW_CLASSES_TOYWORLD, rle

    from .sheet import overlay

    cand = render(ident, 40.0, 15.0, size=128, seed=5)
    masks = overlay(cand.image, VIEW_CLASSES_TOYWORLD, rle.label_map_to_rles(cand.labels, VIEW_CLASSES_TOYWORLD))
    tiles = [(cand.image, "candidate"), (ref, "reference"), (masks, "view masks")]
    paths.append(out_dir / "review_masks.png")
    _save(_grid(tiles, 3), paths[-1])
    return paths


if __name__ == "__main__":
    for p in write_guide_images(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/img")):
        print(p)
