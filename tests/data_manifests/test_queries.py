"""data_manifests.queries: what the review accepted (the latest decision counts) and a table's version."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import data_manifests as dm
from data_manifests.queries import accepted_image_ids
from tests.data_manifests.rows import example_row


def _review(i: int, batch: str, decision: str, day: int, identity_ok: bool | None = True) -> dict:
    at = dt.datetime(2026, 1, day, tzinfo=dt.UTC)
    return dict(example_row("reviews", i), batch_id=batch, decision=decision, reviewed_at=at, identity_ok=identity_ok)


def test_accepted_image_ids_follows_the_latest_decision(tmp_path: Path) -> None:
    assert accepted_image_ids(tmp_path) == set()  # no reviews table
    dm.upsert(
        tmp_path,
        "reviews",
        [
            _review(0, "b0", "accept", 1),
            _review(1, "b0", "accept", 1),
            _review(2, "b0", "reject", 1),
            _review(3, "b0", "accept", 1, identity_ok=False),  # the identity is wrong
            _review(4, "b0", "accept", 1, identity_ok=None),  # not asked: still accepted
            _review(5, "b0", "pending", 1),
        ],
    )
    assert accepted_image_ids(tmp_path) == {"g0", "g1", "g4"}
    # A later batch decides again: g1 is now rejected, g2 accepted; a pending row changes nothing.
    dm.upsert(
        tmp_path,
        "reviews",
        [_review(1, "b1", "reject", 2), _review(2, "b1", "accept", 2), _review(0, "b1", "pending", 3)],
    )
    assert accepted_image_ids(tmp_path) == {"g0", "g2", "g4"}


def test_table_version_changes_with_every_commit(tmp_path: Path) -> None:
    absent = dm.table_version(tmp_path, "reviews")
    dm.upsert(tmp_path, "reviews", [_review(0, "b0", "accept", 1)])
    first = dm.table_version(tmp_path, "reviews")
    assert first != absent and dm.table_version(tmp_path, "reviews") == first  # reading does not change it
    dm.upsert(tmp_path, "reviews", [_review(0, "b0", "reject", 2)])
    assert dm.table_version(tmp_path, "reviews") not in (absent, first)
    assert dm.table_version(tmp_path, "subjects") == absent  # every missing table has the same version
