"""Image hashing for the review queue: correct digests from several threads, and a progress bar that counts files."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from pipeline.review.hashing import hash_files


@pytest.mark.parametrize("count", [10, 300])  # below and above the threaded path's threshold
def test_hash_files_digests_and_progress(tmp_path: Path, capfd: pytest.CaptureFixture, count: int) -> None:
    paths = []
    for i in range(count):
        path = tmp_path / f"{i}.bin"
        path.write_bytes(f"image {i}".encode())
        paths.append(path)
    paths.append(tmp_path / "missing.bin")
    digests = hash_files(paths, desc="review b1: hashing")
    assert digests[:-1] == [hashlib.sha256(f"image {i}".encode()).hexdigest() for i in range(count)]
    assert digests[-1] is None
    err = capfd.readouterr().err
    done = re.findall(r"review b1: hashing: 100%\|[^|]*\| (\d+)/(\d+)", err)
    assert done and done[-1] == (str(count + 1), str(count + 1))
    hash_files(paths)  # no desc: no bar
    assert "hashing" not in capfd.readouterr().err
