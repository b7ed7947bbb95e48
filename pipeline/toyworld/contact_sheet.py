"""A contact sheet of toy-world identities: renders from several views above their colourised view masks.

``python -m pipeline.toyworld.contact_sheet --out docs/img/toyworld_contact_sheet.png`` writes the PNG shown in
``docs/toyworld.md``; with ``--family-size 4 --out docs/img/toyworld_families.png`` it shows family-world families
(members x the nine views, rendered at 64 px and enlarged) instead.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from data_manifests import INTENDED_VIEWS, VIEW_CLASSES_TOYWORLD, atomic_write_bytes
from data_manifests.seeds import derive_seed

from .camera import VIEW_ANGLES
from .identity import ToyIdentity, sample_identity
from .renderer import render

# Colour of each VIEW_CLASSES_TOYWORLD class in mask images.
MASK_COLORS = np.array(
    [(0, 0, 0), (230, 60, 60), (60, 120, 230), (60, 190, 80), (235, 200, 40), (200, 80, 220)], np.uint8
)
SHEET_VIEWS: tuple[str, ...] = ("front", "front_left", "left", "rear_left", "rear", "right", "top")


def colorize(labels: np.ndarray) -> np.ndarray:
    """Label map ``(H, W)`` over ``VIEW_CLASSES_TOYWORLD`` -> RGB ``(H, W, 3)`` uint8."""
    return MASK_COLORS[labels]


def pick_identities(seed: int, n_twin_pairs: int = 1) -> list[ToyIdentity]:
    """One identity per class, plus ``n_twin_pairs`` hard-negative twin pairs (same body, different marks)."""
    chosen: dict[str, ToyIdentity] = {}
    twins: list[ToyIdentity] = []
    index = 0
    while (len(chosen) < 5 or len(twins) < 2 * n_twin_pairs) and index < 10_000:
        ident = sample_identity(seed, index)
        if ident.twin_of is not None and index % 2 == 0 and len(twins) < 2 * n_twin_pairs:
            twins.extend([ident, sample_identity(seed, index + 1)])
        elif ident.twin_of is None:
            chosen.setdefault(ident.class_name, ident)
        index += 1
    return list(chosen.values()) + twins


def contact_sheet(identities: list[ToyIdentity], views: tuple[str, ...] = SHEET_VIEWS, size: int = 128) -> Image.Image:
    """Rows: one identity (image row, then its mask row); columns: ``views`` at their canonical angles (top views
    at 75 degrees elevation). A legend of the mask colours is drawn at the bottom."""
    font = ImageFont.load_default()
    label_w, pad = 150, 4
    cell = size + pad
    height = len(identities) * 2 * cell + 40
    sheet = Image.new("RGB", (label_w + len(views) * cell, height + 24), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for c, view in enumerate(views):
        draw.text((label_w + c * cell + 4, 4), view, fill=(0, 0, 0), font=font)
    for r, ident in enumerate(identities):
        y = 24 + r * 2 * cell
        text = f"{ident.identity_id}\n{ident.color_name} {ident.class_name}"
        if ident.twin_of:
            text += f"\ntwin of {ident.twin_of}"
        draw.multiline_text((4, y + 4), text, fill=(0, 0, 0), font=font)
        for c, view in enumerate(views):
            az, el = VIEW_ANGLES[view]
            el = 75.0 if view == "top" else 12.0
            seed = derive_seed(0, "toyworld.contact_sheet", r, c)
            res = render(ident, az + 8.0 if view != "top" else 20.0, el, size=size, seed=seed)
            sheet.paste(Image.fromarray(res.image), (label_w + c * cell, y))
            sheet.paste(Image.fromarray(colorize(res.labels)), (label_w + c * cell, y + cell))
    x = 4
    for name, color in zip(VIEW_CLASSES_TOYWORLD, MASK_COLORS):
        draw.rectangle((x, height + 2, x + 14, height + 16), fill=tuple(int(v) for v in color), outline=(0, 0, 0))
        draw.text((x + 18, height + 3), name, fill=(0, 0, 0), font=font)
        x += 110
    return sheet


def pick_families(seed: int, family_size: int, n: int = 3, cues_per_face: int = 1) -> list[list[ToyIdentity]]:
    """The first ``n`` families of the family world ``(seed, family_size, cues_per_face)`` whose classes all
    differ."""
    families: dict[str, list[ToyIdentity]] = {}
    f = 0
    while len(families) < n and f < 10_000:
        members = [sample_identity(seed, f * family_size + m, family_size, cues_per_face) for m in range(family_size)]
        families.setdefault(members[0].class_name, members)
        f += 1
    return list(families.values())


def _cue_text(ident: ToyIdentity) -> str:
    """One line per face: ``"left: disc 2 + bars"`` (slot numbers only for slotted patterns and bands)."""
    faces: dict[str, list[str]] = {}
    for c in ident.cues:
        slotless = c.pattern in ("bars", "box", "rack", "light_bar")
        faces.setdefault(c.face, []).append(c.pattern + ("" if slotless else f" {c.slot}"))
    return "\n".join(f"{face}: {' + '.join(names)}" for face, names in faces.items())


def family_sheet(
    families: list[list[ToyIdentity]], views: tuple[str, ...] = INTENDED_VIEWS, size: int = 64, zoom: int = 2
) -> Image.Image:
    """Rows: the members of each family (a family per block, its shared body named above it, each member's cues
    on its left); columns: ``views`` at their canonical angles (top at 80 degrees), the same render seed down a
    column. Rendered at ``size`` on a plain light blue background and enlarged ``zoom`` times without smoothing."""
    font = ImageFont.load_default()
    label_w, pad, head = 150, 4, 18
    cell = size * zoom + pad
    n_rows = sum(len(f) for f in families)
    sheet = Image.new("RGB", (label_w + len(views) * cell, 20 + len(families) * head + n_rows * cell), "white")
    draw = ImageDraw.Draw(sheet)
    for c, view in enumerate(views):
        draw.text((label_w + c * cell + 4, 4), view, fill=(0, 0, 0), font=font)
    y = 20
    for members in families:
        first = members[0]
        dims = " x ".join(f"{d:.2f}" for d in first.dims)
        text = f"{first.family}: {len(members)} x {first.color_name} {first.class_name}, {dims} m (shared)"
        draw.text((4, y + 3), text, fill=(0, 0, 0), font=font)
        y += head
        for ident in members:
            draw.multiline_text((4, y + 2), f"{ident.identity_id}\n{_cue_text(ident)}", fill=(0, 0, 0), font=font)
            for c, view in enumerate(views):
                az, el = VIEW_ANGLES[view]
                res = render(ident, az, 80.0 if view == "top" else el, size=size, seed=c, background=(178, 205, 230))
                tile = Image.fromarray(res.image).resize((size * zoom, size * zoom), Image.NEAREST)
                sheet.paste(tile, (label_w + c * cell, y))
            y += cell
    return sheet


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="write a toy-world contact sheet PNG")
    parser.add_argument("--out", required=True, help="PNG path")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=None, help="render size (default 112; family sheet 64)")
    parser.add_argument("--family-size", type=int, default=1, help="K >= 2: a sheet of family-world families")
    parser.add_argument("--families", type=int, default=3, help="families on the family sheet (default 3)")
    parser.add_argument("--cues-per-face", type=int, default=1, help="family world: cues on each face (default 1)")
    args = parser.parse_args(argv)
    import io

    if args.family_size > 1:
        families = pick_families(args.seed, args.family_size, args.families, args.cues_per_face)
        sheet = family_sheet(families, size=args.size or 64)
    else:
        sheet = contact_sheet(pick_identities(args.seed), size=args.size or 112)
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG", optimize=True)
    atomic_write_bytes(Path(args.out), buffer.getvalue())
    print(f"wrote {args.out} ({sheet.width}x{sheet.height})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
