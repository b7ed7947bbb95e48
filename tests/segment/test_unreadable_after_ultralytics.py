"""In one process the flow imports ultralytics (filter) before segmenting; ultralytics patches ``PIL.Image.open``.
An unreadable image must still be a clear PIL error that the stage records as ``unreadable_image``."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.segment.data import read_image


def test_unreadable_image_after_ultralytics_import(tmp_path: Path) -> None:
    import ultralytics  # noqa: F401 - installs the patch

    bad = tmp_path / "garbage.png"
    bad.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="garbage.png is not a readable image"):
        read_image(bad)
