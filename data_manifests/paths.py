"""Ids and paths built from manifest values: ids are single safe path components, paths stay inside the data root.

Stages build file names from ids (``crops/<identity_id>/<image_id>.png``) and open files named by path columns. A
row whose id is ``../../x`` or whose path is ``/etc/passwd`` must not make a stage read or write outside the data
root, so ids are checked when rows are written and when they are read, and every path built from a manifest value
goes through :func:`inside_root`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

# Letters, digits, '.', '_' and '-', at most 128 characters, and not '.' or '..' (so: one path component).
ID_CHARS = r"^[A-Za-z0-9._-]{1,128}$"
ID_PATTERN = re.compile(ID_CHARS)
ID_COLUMNS: tuple[str, ...] = ("identity_id", "image_id")
ID_RULE = "ids may only use letters, digits, '.', '_' and '-' (at most 128, not '.' or '..')"


class PathEscapeError(ValueError):
    """A path built from a manifest value would leave the data root."""


def is_valid_id(value: str) -> bool:
    return bool(ID_PATTERN.match(value)) and value not in (".", "..")


def check_id(value: object, what: str = "id") -> str:
    """``value`` if it is a valid id, else a ``ValueError`` naming ``what`` and the rule."""
    if not isinstance(value, str) or not is_valid_id(value):
        raise ValueError(f"{what} {value!r} is not a valid id: {ID_RULE}")
    return value


def bad_ids(arrow: pa.Table, columns: tuple[str, ...] = ID_COLUMNS) -> list[tuple[int, str, object]]:
    """``(row index, column, value)`` of every id that breaks the rule (vectorised; nulls are not checked here)."""
    bad = []
    for column in columns:
        if column not in arrow.column_names:
            continue
        col = arrow.column(column)
        ok = pc.match_substring_regex(col, ID_CHARS)
        ok = pc.and_(ok, pc.invert(pc.is_in(col, value_set=pa.array([".", ".."]))))
        for index in pc.indices_nonzero(pc.invert(pc.fill_null(ok, True))).to_pylist():
            bad.append((index, column, col[index].as_py()))
    return bad


def is_inside(rel: str) -> bool:
    """Is the relative path ``rel`` inside the root? Lexical: ``a/../b`` is inside; ``../x``, ``/x``, ``C:\\x`` not."""
    if os.path.isabs(rel) or re.match(r"^[A-Za-z]:[\\/]", rel) or "\0" in rel:
        return False
    norm = os.path.normpath(rel.replace("\\", "/"))
    return norm != ".." and not norm.startswith("../")


def inside_root(root: str | os.PathLike, rel: str | os.PathLike, what: str = "path") -> Path:
    """``root / rel``, refused with :class:`PathEscapeError` when it would leave ``root``.

    Lexically (``..``, absolute paths) and after resolving symlinks of folders that exist, so a symlinked
    ``crops/<id>`` pointing elsewhere is refused too.
    """
    rel = str(rel)
    root = Path(root)
    path = root / rel
    if not rel or not is_inside(rel) or not path.resolve().is_relative_to(root.resolve()):
        raise PathEscapeError(
            f"{what} {rel!r} leaves the data root {root}; manifest paths must be relative paths inside it "
            "(fix or delete the row; `diffveri manifests validate --root ROOT` lists such rows)"
        )
    return path
