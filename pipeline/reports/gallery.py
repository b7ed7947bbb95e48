"""Report PNGs as one markdown document with the images embedded (``data:`` URIs), for places that show markdown
but cannot reach the data root's files — the flow's Prefect artifacts."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path

MAX_EMBED_BYTES = 400_000  # a larger PNG is linked by path, not embedded (artifacts are stored in the database)


def markdown_gallery(title: str, paths: Sequence[Path], *, max_images: int = 12, level: int = 1) -> str:
    """``# title``, then each PNG (up to ``max_images`` embedded, each under its file path); the rest are listed."""
    lines = ["#" * level + f" {title}", ""]
    for i, path in enumerate(paths):
        data = path.read_bytes() if i < max_images else b""
        if data and len(data) <= MAX_EMBED_BYTES:
            encoded = base64.b64encode(data).decode("ascii")
            lines += [f"**{path.name}** (`{path}`)", "", f"![{path.stem}](data:image/png;base64,{encoded})", ""]
        else:
            lines.append(f"- `{path}`")
    return "\n".join(lines) + "\n"
