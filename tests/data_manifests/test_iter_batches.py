from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

import data_manifests as dm

from .rows import example_row


def test_iter_batches_streams_what_read_table_reads(tmp_path: Path) -> None:
    rows = [{**example_row("generations", i), "status": "ok" if i % 3 else "failed"} for i in range(50)]
    dm.write_table(tmp_path, "generations", rows)
    filt = pc.field("status") == "ok"
    batches = list(dm.iter_batches(tmp_path, "generations", columns=["image_id", "status"], filter=filt, batch_rows=8))
    assert all(b.num_rows <= 8 for b in batches) and len(batches) >= 5
    streamed = pa.Table.from_batches(batches).sort_by("image_id")
    expected = dm.read_table(tmp_path, "generations", columns=["image_id", "status"], filter=filt)
    assert streamed.equals(expected.sort_by("image_id")) and streamed.num_rows == 33


def test_iter_batches_of_a_missing_table_is_the_read_table_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        list(dm.iter_batches(tmp_path, "generations"))
