"""Questions one stage asks about what another stage decided, answered from the manifest tables alone.

A stage never imports another stage to learn its decisions: ``segment`` and ``assemble`` ask
:func:`accepted_image_ids` which images the review accepted, whoever wrote the ``reviews`` rows (a person through
the CSV import, or the automatic policy).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .enums import Decision
from .store import read_table, table_exists

if TYPE_CHECKING:
    import pandas as pd


def reviews_frame(root: str | os.PathLike) -> pd.DataFrame:
    """The whole ``reviews`` table as a DataFrame (empty with the right columns when the table does not exist)."""
    return read_table(root, "reviews", missing_ok=True).to_pandas()


def latest_decisions(reviews: pd.DataFrame) -> pd.DataFrame:
    """One row per image (indexed by ``image_id``): its most recent decided review (decision not pending), over
    every batch, by ``reviewed_at``."""
    decided = reviews[reviews["decision"] != Decision.PENDING.value]
    if decided.empty:
        return decided
    return (
        decided.sort_values(["reviewed_at", "batch_id"], kind="stable").groupby("image_id", sort=False).tail(1)
    ).set_index("image_id")


def accepted_image_ids(root: str | os.PathLike) -> set[str]:
    """Images whose latest decided review is ``accept`` and whose identity was not marked wrong (``identity_ok`` is
    not False). Downstream stages (segment, assemble) pass on only these; empty without a ``reviews`` table."""
    if not table_exists(root, "reviews"):
        return set()
    latest = latest_decisions(reviews_frame(root))
    if latest.empty:
        return set()
    ok = (latest["decision"] == Decision.ACCEPT.value) & (latest["identity_ok"] != False)  # noqa: E712 - keeps NA
    return set(latest.index[ok.fillna(True)])
