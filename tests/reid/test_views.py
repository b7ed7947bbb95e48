"""View-aware mAP: the relation table, hand-computed APs, parity with evaluate_rank, the one-call helper."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vehiclemae.reid.metrics import FeatureDistances, evaluate_rank, evaluate_rank_loop
from vehiclemae.reid.views import (
    cross_view_mAP,
    masked_average_precision,
    retrieval_metrics,
    same_view_mAP,
    view_relation,
)


@pytest.mark.parametrize(
    "a, b, expected",
    [
        ("front", "front", "same"),
        ("front", "front_left", "same"),
        ("front_right", "front", "same"),  # 315 vs 0: circular difference 45
        ("front", "left", "cross"),
        ("front_right", "front_left", "cross"),  # 315 vs 45: 90
        ("rear_left", "rear_right", "cross"),  # 135 vs 225: 90
        ("front", "rear", "cross"),
        ("top", "rear", "cross"),
        ("left", "top", "cross"),
        ("top", "top", None),
    ],
)
def test_view_relation(a: str, b: str, expected: str | None) -> None:
    assert view_relation(a, b) == expected
    assert view_relation(b, a) == expected


def test_unknown_view_name_lists_valid_bins() -> None:
    with pytest.raises(ValueError, match="front_left"):
        view_relation("sideways", "front")


def _hand_problem():
    # Gallery: g0 id1 c2 front_left, g1 id2 c2 front, g2 id1 c3 rear, g3 id1 c1 front (same id+cam: junk),
    # g4 id1 c2 top, g5 id3 c2 left.
    g_pids = [1, 2, 1, 1, 1, 3]
    g_cams = [2, 2, 3, 1, 2, 2]
    g_views = ["front_left", "front", "rear", "front", "top", "left"]
    # q0: id1 c1 front; q1: id2 c1 top.
    q_pids, q_cams, q_views = [1, 2], [1, 1], ["front", "top"]
    dist = np.array(
        [
            [0.1, 0.2, 0.3, 0.05, 0.4, 0.35],
            [0.5, 0.3, 0.1, 0.2, 0.6, 0.7],
        ]
    )
    return dist, q_pids, g_pids, q_cams, g_cams, q_views, g_views


def test_hand_computed_same_and_cross_view_ap() -> None:
    dist, qp, gp, qc, gc, qv, gv = _hand_problem()
    # q0 same-view: only g0 is a positive (g2, g4 become junk): ranking g0 g1 g5 -> AP 1.
    # q1 (top) has no same-view positive (top-top is neither; g1 is front): skipped.
    same = same_view_mAP(dist, qp, gp, qc, gc, qv, gv)
    assert same == {"mAP": pytest.approx(1.0), "num_valid_queries": 1, "num_queries": 2}
    # q0 cross-view: g2 (rear) and g4 (top); g0 junk. Ranking g1 g2 g5 g4 -> (1/2 + 2/4) / 2 = 0.5.
    # q1 cross-view: g1 (front vs top), ranked after g2 and g3 -> 1/3.
    cross = cross_view_mAP(dist, qp, gp, qc, gc, qv, gv)
    assert cross["num_valid_queries"] == 2
    assert cross["mAP"] == pytest.approx((0.5 + 1 / 3) / 2)


def test_hand_computed_helper() -> None:
    dist, qp, gp, qc, gc, qv, gv = _hand_problem()
    out = retrieval_metrics(dist, qp, gp, qc, gc, qv, gv)
    # Standard protocol, q0: positives g0, g2, g4 at ranks 0, 2, 4 -> (1 + 2/3 + 3/5) / 3; q1: g1 at rank 2 -> 1/3.
    assert out["mAP"] == pytest.approx(100 * ((1 + 2 / 3 + 3 / 5) / 3 + 1 / 3) / 2)
    assert out["rank1"] == pytest.approx(50.0)
    assert out["same_view_mAP"] == pytest.approx(100.0)
    assert out["same_view_queries"] == 1
    assert out["cross_view_mAP"] == pytest.approx(100 * (0.5 + 1 / 3) / 2)
    assert out["cross_view_queries"] == 2
    plain = retrieval_metrics(dist, qp, gp, qc, gc)
    assert plain["cross_view_mAP"] is None and plain["same_view_mAP"] is None
    assert plain["mAP"] == out["mAP"]


def test_no_valid_query_gives_none() -> None:
    dist, qp, gp, qc, gc, _, _ = _hand_problem()
    out = retrieval_metrics(dist, qp, gp, qc, gc, ["top", "top"], ["top"] * 6)
    assert out["same_view_mAP"] is None and out["same_view_queries"] == 0
    assert out["cross_view_mAP"] is None and out["cross_view_queries"] == 0


def test_unknown_views_are_neither() -> None:
    dist, qp, gp, qc, gc, qv, _ = _hand_problem()
    out = retrieval_metrics(dist, qp, gp, qc, gc, qv, [None] * 6)
    assert out["same_view_queries"] == 0 and out["cross_view_queries"] == 0


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("integer", [False, True])
def test_masked_ap_parity_with_evaluate_rank(seed: int, integer: bool) -> None:
    rng = np.random.default_rng(seed)
    q, g = 37, 113
    dist = rng.integers(0, 5, size=(q, g)).astype(np.float32) if integer else rng.random((q, g))
    qp, gp = rng.integers(0, 12, q), rng.integers(0, 12, g)
    qc, gc = rng.integers(0, 4, q), rng.integers(0, 4, g)
    same_id = qp[:, None] == gp[None, :]
    junk = same_id & (qc[:, None] == gc[None, :])
    ap, first = masked_average_precision(dist, same_id, junk)
    ref = evaluate_rank_loop(dist, qp, gp, qc, gc, max_rank=1)
    valid = ~np.isnan(ap)
    assert int(valid.sum()) == ref["num_valid_queries"]
    np.testing.assert_allclose(ap[valid].mean(), ref["mAP"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.mean(first[valid] == 0), ref["cmc"][0], rtol=0, atol=1e-12)
    # Also through the helper with every image in one view bin: same-view mAP == plain mAP.
    out = retrieval_metrics(torch.from_numpy(dist), qp, gp, qc, gc, ["front"] * q, ["front"] * g)
    assert out["same_view_mAP"] == pytest.approx(100 * evaluate_rank(dist, qp, gp, qc, gc)["mAP"], abs=1e-9)
    assert out["cross_view_queries"] == 0


def test_helper_accepts_lazy_distances() -> None:
    rng = np.random.default_rng(0)
    qf, gf = torch.randn(6, 8), torch.randn(20, 8)
    qp, gp = np.arange(6) % 3, np.arange(20) % 3
    qc, gc = np.zeros(6, int), np.ones(20, int)
    views = list(rng.choice(["front", "rear", "left", "top"], size=26))
    lazy = retrieval_metrics(FeatureDistances(qf, gf, "cosine"), qp, gp, qc, gc, views[:6], views[6:])
    dense = retrieval_metrics(FeatureDistances(qf, gf, "cosine")[0:6], qp, gp, qc, gc, views[:6], views[6:])
    assert lazy == pytest.approx(dense)


def test_shape_errors() -> None:
    dist, qp, gp, qc, gc, qv, gv = _hand_problem()
    with pytest.raises(ValueError, match="g_views has 5 entries"):
        same_view_mAP(dist, qp, gp, qc, gc, qv, gv[:5])
    with pytest.raises(ValueError, match="both"):
        retrieval_metrics(dist, qp, gp, qc, gc, qv, None)
