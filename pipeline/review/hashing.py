"""sha256 of image files, a few threads at a time (the review queue records and re-checks image bytes)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from tqdm import tqdm


def hash_files(paths: Sequence[str | os.PathLike], threads: int = 4, desc: str | None = None) -> list[str | None]:
    """sha256 of each file (None if it does not exist). A few threads, each hashing a contiguous share of the list,
    overlap the file system calls (they release the GIL). ``desc``: show a progress bar (files, ETA) with this name."""
    bar = tqdm(total=len(paths), desc=desc, unit="file", disable=desc is None)

    def some(part: Sequence[str | os.PathLike]) -> list[str | None]:
        out: list[str | None] = []
        for path in part:
            try:
                with open(path, "rb") as handle:
                    out.append(hashlib.file_digest(handle, "sha256").hexdigest())
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                out.append(None)
            bar.update(1)  # tqdm's own lock makes this safe from several threads
        return out

    with bar:
        if len(paths) < 256:
            return some(paths)
        step = -(-len(paths) // threads)
        with ThreadPoolExecutor(threads) as pool:
            parts = list(pool.map(some, [paths[i : i + step] for i in range(0, len(paths), step)]))
    return [h for part in parts for h in part]
