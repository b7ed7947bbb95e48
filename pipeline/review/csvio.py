"""The review CSV format: columns, spreadsheet-safe cells, reading with line numbers.

Files are UTF-8 with a header row and a stable column order. Image ids are written with the prefix :data:`ID_PREFIX`
(``i3f2a...``): a hex id made only of digits (or digits and one ``e``) would otherwise be turned into a number such
as ``8.12346E+15`` by a spreadsheet. Import accepts ids with and without the prefix. Import detects the delimiter
from the header row: comma, semicolon (what Excel writes in many European locales) or tab. A cell that a spreadsheet
would run as a formula (it starts with ``= + - @``, a tab or a carriage return) is written with a leading
apostrophe, which spreadsheets treat as "this is text"; import removes that apostrophe again. Import accepts a
byte-order mark and CRLF line ends (Excel's "CSV UTF-8" writes both). A file the csv module cannot parse (a cell over
its field limit, usually from a quote that is never closed) raises :class:`CsvSyntaxError` with the line number, not
``_csv.Error``.
"""

from __future__ import annotations

import contextlib
import csv
import gc
import io
from collections.abc import Iterator, Sequence
from pathlib import Path

from data_manifests import atomic_write_bytes

READ_ONLY: tuple[str, ...] = (
    "batch_id",
    "image_id",
    "image",
    "reference",
    "identity_id",
    "intended_view",
    "detector_conf",
)
EDITABLE: tuple[str, ...] = ("decision", "view_label", "identity_ok", "notes", "reviewer")
COLUMNS: tuple[str, ...] = READ_ONLY + EDITABLE

ID_PREFIX = "i"
DELIMITERS: dict[str, str] = {",": "comma", ";": "semicolon", "\t": "tab"}

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
QUOTE = "'"
_FORMULA_CHARS = frozenset(FORMULA_STARTS)


def neutralise(value: str) -> str:
    """Prefix a cell that a spreadsheet would evaluate as a formula with an apostrophe."""
    return QUOTE + value if value.startswith(FORMULA_STARTS) else value


def unneutralise(value: str) -> str:
    """Undo :func:`neutralise` (only an apostrophe followed by a formula character is ours to remove)."""
    if value.startswith(QUOTE) and value[1:].startswith(FORMULA_STARTS):
        return value[1:]
    return value


def export_id(image_id: str) -> str:
    """The form of an image id in exported CSVs: :data:`ID_PREFIX` + id (a spreadsheet keeps it as text)."""
    return ID_PREFIX + image_id


def strip_id_prefix(value: str, known: set[str] | dict[str, object]) -> str:
    """The image id a CSV cell names: ``i<id>`` (the exported form) when ``<id>`` is known, else the cell as it is
    (files exported before ids had the prefix)."""
    if value.startswith(ID_PREFIX) and value[len(ID_PREFIX) :] in known:
        return value[len(ID_PREFIX) :]
    return value


def detect_delimiter(header_line: str) -> str:
    """The delimiter of a review CSV: the one of :data:`DELIMITERS` that splits the header row into the most known
    column names (comma when none does better, so the header check reports what is wrong)."""
    best, best_hits = ",", 0
    for delimiter in DELIMITERS:
        hits = sum(1 for cell in header_line.split(delimiter) if cell.strip().strip('"') in COLUMNS)
        if hits > best_hits:
            best, best_hits = delimiter, hits
    return best


def write_csv(path: Path, rows: Sequence[dict[str, str]]) -> None:
    """Write rows (all :data:`COLUMNS`) atomically, UTF-8 without BOM, ``\\r\\n`` line ends (the CSV standard);
    the image id in its exported form (:func:`export_id`)."""
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in rows:
        cells = {c: str(row.get(c, "") if row.get(c) is not None else "") for c in COLUMNS}
        cells["image_id"] = export_id(cells["image_id"])
        writer.writerow([neutralise(cells[c]) for c in COLUMNS])
    atomic_write_bytes(path, buf.getvalue().encode("utf-8"))


class CsvSyntaxError(ValueError):
    """The file is not parseable CSV from ``line`` on."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.reason = message


def read_csv_lines(text: str, delimiter: str = ",") -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line number of the record's first line, cells)``; line 1 is the header. Cells are un-neutralised."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    last = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise CsvSyntaxError(
                last + 1,
                f"not readable as CSV ({exc}); a cell that long usually starts with a quote that is never closed: "
                "remove the stray quote (or quote the whole cell and double the quotes inside it)",
            ) from None
        start = last + 1
        last = reader.line_num
        # Inline un-neutralise: this loop runs for every cell of files with 100k rows.
        yield start, [c[1:] if c[:1] == QUOTE and c[1:2] in _FORMULA_CHARS else c for c in cells]


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: a 100k-row file makes millions of small acyclic objects, and the
    collector re-scanning them took half of the import's CPU time (measured in benchmarks/bench_filter.py)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
