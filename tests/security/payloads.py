"""Crafted checkpoint files: pickles whose ``__reduce__`` would create a marker file when unpickled."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch


class Payload:
    """Unpickling this calls ``open(marker, "w")`` (or ``os.system("touch marker")``): the marker proves code ran."""

    def __init__(self, marker: Path, how: str = "open") -> None:
        self.marker, self.how = Path(marker), how

    def __reduce__(self):
        if self.how == "system":
            return os.system, (f"touch {self.marker}",)
        return open, (str(self.marker), "w")


HOWS = ("open", "system")


def write_payload(path: Path, marker: Path, how: str = "open", around: dict[str, Any] | None = None) -> Path:
    """A ``torch.save`` zip archive: ``around`` (e.g. a real checkpoint's dict) with the payload under ``"x"``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({**(around or {}), "x": Payload(marker, how)}, path)
    return path


def write_plain_pickle_payload(path: Path, marker: Path) -> Path:
    """The payload as a bare pickle (not a torch.save archive), which torch.load also accepts."""
    path.write_bytes(pickle.dumps({"x": Payload(marker)}, protocol=pickle.HIGHEST_PROTOCOL))
    return path


def write_damaged(path: Path, kind: str, good: Path | None = None) -> Path:
    """An empty file, a torch.save file cut in half (``good`` is the original), or text that is no checkpoint."""
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        data = Path(good).read_bytes()  # type: ignore[arg-type]
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(b"this is not a checkpoint\n" * 4)
    return path
