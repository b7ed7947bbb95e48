"""Image ids in annotated CSVs: the exported ``i`` prefix, bare ids, and ids a spreadsheet turned into numbers.

Excel reads a cell such as ``8123456789012345`` (a hex id made only of digits) or ``1234e567...`` as a number and
saves it back as ``8.12346E+15`` or ``8123456789012350``: the id is lost. Recovery is allowed only when it is exact
(policy, documented in docs/review-guide.md): the row's ``image`` cell (the crop path, read-only) names exactly one
image of the batch, and that image's id, read as a number, equals the cell's number at the precision the cell
shows. Anything else stays a problem that names the row.
"""

from __future__ import annotations

import math
import re
from typing import Any

from .csvio import ID_PREFIX, strip_id_prefix

_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_EXCEL_DIGITS = 15  # Excel keeps 15 significant digits of a number


def looks_numeric(cell: str) -> bool:
    """Is the cell a number as a spreadsheet writes one (``8.12346E+15``, ``8123456789012350``, ``1.2e+19``)?"""
    return bool(_NUMBER.match(cell.strip().replace(",", ".")))


def _significant_digits(cell: str) -> int:
    mantissa = re.split(r"[eE]", cell.strip().lstrip("+-").replace(",", "."))[0]
    digits = mantissa.replace(".", "").lstrip("0")
    if "." not in mantissa and "e" not in cell.lower():
        digits = digits.rstrip("0")  # 8123456789012350: the trailing zeros are padding, not precision
    return max(1, min(len(digits), _EXCEL_DIGITS))


def numbers_agree(cell: str, image_id: str) -> bool:
    """Does ``image_id``, read as a number, round to the number in ``cell`` at the cell's precision?"""
    try:
        value, target = float(cell.replace(",", ".")), float(image_id)
    except ValueError:
        return False  # a hex id with letters other than one "e" is never a number
    if not (math.isfinite(value) and math.isfinite(target)) or target == 0:
        return value == target
    sig = _significant_digits(cell)
    unit = 10 ** (math.floor(math.log10(abs(target))) - sig + 1)
    return abs(value - target) <= 0.5 * unit * (1 + 1e-9)


def mangled_message(cell: str, batch: str) -> str:
    """The problem text for an id a spreadsheet turned into a number that could not be recovered exactly."""
    return (
        f"image id {cell!r} was turned into a number by a spreadsheet and cannot be matched exactly to one image of "
        f"batch {batch} (the row's image cell must still name it). Copy this row's image_id from the exported CSV "
        f"(exported ids start with {ID_PREFIX!r}, which spreadsheets keep as text), or re-export the batch"
    )


def resolve_ids(
    records: list[tuple[int, dict[str, str]]], expected: dict[str, dict[str, Any]], recovered: list[str]
) -> None:
    """Rewrite each record's ``image_id`` cell to the bare id it names, in place: the exported ``i<id>`` form, a
    bare id, or (exactly recoverable) a spreadsheet number. Unresolvable cells are left as they are, for the row
    checks to report. ``recovered`` gets one note per recovered row."""
    by_image: dict[str, list[str]] = {}
    for iid, row in expected.items():
        if row.get("image"):
            by_image.setdefault(row["image"], []).append(iid)
    for line, r in records:
        cell = r["image_id"]
        iid = strip_id_prefix(cell, expected)
        if iid in expected or not looks_numeric(cell):
            r["image_id"] = iid
            continue
        owners = by_image.get(r["image"], [])
        if len(owners) == 1 and numbers_agree(cell, owners[0]):
            r["image_id"] = owners[0]
            recovered.append(
                f"line {line}: image id {cell!r} (made a number by a spreadsheet) recovered as {owners[0]} from the "
                "row's image cell"
            )
