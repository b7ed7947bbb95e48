"""Helpers for the data-hardening tests: tables written as an external tool would, crafted images, byte flips."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

import data_manifests as dm
from data_manifests import store


def raw_write(root: Path, table: str, rows: list[dict[str, Any]]) -> Path:
    """Append rows to a table with pyarrow alone, skipping every check of the writer (a buggy or hostile tool)."""
    spec = dm.get_spec(table)
    directory = store.table_dir(root, table)
    directory.mkdir(parents=True, exist_ok=True)
    arrow = pa.Table.from_pylist(rows, schema=spec.schema_with_metadata())
    name = f"part-raw{len(list(directory.glob('part-*')))}.parquet"
    pq.write_table(arrow, directory / name)
    pointer_path = directory / store.POINTER
    pointer = json.loads(pointer_path.read_text()) if pointer_path.is_file() else {"schema_version": 1, "parts": []}
    pointer["parts"].append(name)
    pointer_path.write_text(json.dumps(pointer))
    return directory / name


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(width: int = 12000, height: int = 12000) -> bytes:
    """A valid PNG header declaring ``width x height`` grey pixels, with a tiny (all-zero) compressed body."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    body = zlib.compress(row * height, 9)  # zeros compress about 1000:1
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", body) + png_chunk(b"IEND", b"")


def flip_data_page_byte(part: Path) -> None:
    """Flip one byte inside the compressed data of the first column chunk (not in a header or the footer)."""
    column = pq.ParquetFile(part).metadata.row_group(0).column(0)
    offset = column.data_page_offset + column.total_compressed_size - 2
    data = bytearray(part.read_bytes())
    data[offset] ^= 0xFF
    part.write_bytes(bytes(data))
