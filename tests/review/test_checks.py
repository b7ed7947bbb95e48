"""Automatic consistency checks before review (identity and view scores) and the triage that uses them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import data_manifests as dm
from data_manifests.stats import review_coverage
from pipeline.review import Bands, parse_policy, select, triage
from pipeline.review.checks import VIEW_SHOWS, run_checks, view_consistency
from pipeline.review.encoders import ColourHistogramEncoder, build_encoder
from pipeline.review.stage import run_stage
from pipeline.toyworld.export import ToyworldSettings, build_toyworld

REPO = Path(__file__).resolve().parents[2]
TOY_SAM = REPO / "models" / "toy" / "sam_view.pt"
# A prompted view that shows none of the faces of the rendered one, in PVEN classes (which cannot tell left from
# right: both are "side").
OPPOSITE = {
    "front": "rear",
    "rear": "front",
    "left": "front",
    "right": "rear",
    "front_left": "rear",
    "front_right": "rear",
    "rear_left": "front",
    "rear_right": "front",
    "top": "front",
}


def toy_root(path: Path, identities: int = 6, images: int = 6) -> Path:
    """A toy world (renders, subject photos, exact boxes) with every image kept by the filter."""
    build_toyworld(path, ToyworldSettings(identities=identities, images_per_identity=images, size=128), progress=False)
    segs = dm.read_rows(path, "segments_gt", columns=["image_id", "bbox"])
    rows = [{"image_id": s["image_id"], "bbox": s["bbox"], "conf": 0.9, "status": "ok"} for s in segs]
    dm.upsert(path, "detections", rows)
    return path


def relabel(root: Path, which, **changes) -> set[str]:
    """Change the generations rows ``which(row, index)`` selects; returns their ids."""
    gens = sorted(dm.read_rows(root, "generations"), key=lambda r: (r["identity_id"], r["image_id"]))
    picked = [dict(r, **{k: f(r) for k, f in changes.items()}) for i, r in enumerate(gens) if which(r, i)]
    dm.upsert(root, "generations", picked)
    return {r["image_id"] for r in picked}


def scores(root: Path, column: str) -> dict[str, float]:
    return {r["image_id"]: r[column] for r in dm.read_rows(root, "detections")}


def auc(positive: list[float], negative: list[float]) -> float:
    """The share of (positive, negative) pairs the scores order correctly."""
    return float(np.mean([p > n for p in positive for n in negative]))


# ----------------------------------------------------------------------------------------------------------- scores
def test_identity_scores_order_matching_above_mismatched_identities(tmp_path):
    root = toy_root(tmp_path / "w")
    ids = sorted({r["identity_id"] for r in dm.read_rows(root, "subjects")})
    nxt = {a: b for a, b in zip(ids, ids[1:] + ids[:1], strict=True)}
    # Two images per identity claim to show the next identity: a generation that lost its identity.
    wrong = relabel(root, lambda r, i: i % 6 < 2, identity_id=lambda r: nxt[r["identity_id"]])
    counts = run_checks(root, ColourHistogramEncoder(), progress=False)
    assert counts["scored"] == 36 and counts["no_subject_photos"] == 0
    s = scores(root, "identity_score")
    matched = [v for k, v in s.items() if k not in wrong]
    mismatched = [v for k, v in s.items() if k in wrong]
    assert len(mismatched) == 12 and all(-1.0 <= v <= 1.0 for v in s.values())
    assert np.mean(matched) > np.mean(mismatched) + 0.1
    assert auc(matched, mismatched) >= 0.8
    # Same encoder again: nothing to do; a different encoder re-scores.
    assert run_checks(root, ColourHistogramEncoder(), progress=False)["skipped"] == 36
    assert run_checks(root, ColourHistogramEncoder(), identities=ids[:1], progress=False)["skipped"] == 6  # a shard
    assert run_checks(root, ColourHistogramEncoder(bins=4), progress=False)["scored"] == 36


@pytest.mark.skipif(not TOY_SAM.is_file(), reason="models/toy/sam_view.pt is made by `make toy-models`")
def test_view_scores_order_prompted_above_opposite_views(tmp_path):
    from pipeline.segment.model import load_segmenter

    torch.set_num_threads(1)
    root = toy_root(tmp_path / "w", identities=4, images=9)
    wrong = relabel(root, lambda r, i: i % 3 == 0, intended_view=lambda r: OPPOSITE[r["intended_view"]])
    segmenter, sha = load_segmenter(TOY_SAM)
    run_checks(root, ColourHistogramEncoder(), segmenter, f"sam:{sha[:8]}", progress=False)
    s, dominant = scores(root, "view_score"), scores(root, "segment_view")
    assert set(dominant.values()) <= set(segmenter.view_classes[1:])
    right = [v for k, v in s.items() if k not in wrong]
    flipped = [v for k, v in s.items() if k in wrong]
    assert np.mean(right) > np.mean(flipped) + 0.3
    assert auc(right, flipped) >= 0.85
    assert {r["checks_ref"] for r in dm.read_rows(root, "detections")} == {f"colour_histogram:8|sam:{sha[:8]}"}


def test_view_consistency_arithmetic():
    classes = ("background", "front", "rear", "side", "top")
    assert view_consistency("front", classes, [0.0, 0.6, 0.0, 0.1, 0.3]) == (pytest.approx(0.6), "front")
    assert view_consistency("front_left", classes, [0.0, 0.3, 0.0, 0.5, 0.2]) == (pytest.approx(0.8), "side")
    assert view_consistency("rear", classes, [0.0, 0.7, 0.1, 0.2, 0.0]) == (pytest.approx(0.1), "front")
    toy = ("background", "front", "rear", "left", "right", "top")
    assert view_consistency("left", toy, [0, 0, 0, 0.25, 0.75, 0])[0] == pytest.approx(0.25)  # right is not left
    assert view_consistency("top", classes, [1.0, 0, 0, 0, 0]) == (None, None)
    assert set(VIEW_SHOWS) == set(dm.INTENDED_VIEWS)
    with pytest.raises(ValueError, match="fractions"):
        view_consistency("front", classes, [0.5, 0.5])


def test_encoders_registry_and_a_local_clip_vision_tower(tmp_path):
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    with pytest.raises(KeyError, match="valid encoders: colour_histogram, clip"):
        build_encoder("dino")
    with pytest.raises(ValueError, match="encoder_path"):
        build_encoder("clip")
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        build_encoder("clip", tmp_path / "absent")
    # A tiny randomly initialised CLIP vision tower saved locally, loaded the way the paper profile loads ViT-B/16.
    torch.manual_seed(0)
    config = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32,
        patch_size=8, projection_dim=16,
    )  # fmt: skip
    CLIPVisionModelWithProjection(config).save_pretrained(tmp_path / "clip")
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(
        tmp_path / "clip"
    )
    encoder = build_encoder("clip", tmp_path / "clip", batch_size=2)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (40 + 8 * i, 48, 3), dtype=np.uint8) for i in range(3)]
    emb = encoder.embed(images)
    assert emb.shape == (3, 16) and np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert np.allclose(encoder.embed(images[:1]), emb[:1], atol=1e-5)  # batching does not change an embedding
    assert encoder.ref.startswith("clip:clip@")


# ----------------------------------------------------------------------------------------------------------- triage
def frame(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["image_id", "identity_id", "conf", "identity_score", "view_score"])


def test_triage_bands_and_reason_codes():
    bands = Bands(conf=(0.25, 0.6), identity=(0.5, 0.7), view=(0.3, 0.6))
    c = frame(
        [
            ("a", "x", 0.9, 0.8, 0.9),  # everything above: accept
            ("b", "x", 0.9, 0.4, 0.9),  # identity below: reject
            ("c", "x", 0.9, 0.8, 0.1),  # view below: reject
            ("d", "x", 0.9, 0.4, 0.1),  # both below: the identity check is named
            ("e", "x", 0.9, 0.6, 0.9),  # identity in band: a person
            ("f", "x", 0.9, 0.8, 0.5),  # view in band
            ("g", "x", 0.4, 0.8, 0.9),  # detector confidence in band
            ("h", "x", 0.9, 0.6, 0.1),  # a reject wins over an uncertain score
            ("i", "x", 0.9, np.nan, np.nan),  # not scored: passes
            ("j", "x", 0.1, 0.8, 0.9),  # confidence below the band: the filter kept it, it passes
        ]
    )
    t = triage(c, bands).set_index("image_id")
    assert t["triage"].to_dict() == dict(
        a="accept", b="reject", c="reject", d="reject", e="uncertain", f="uncertain", g="uncertain", h="reject",
        i="accept", j="accept",
    )  # fmt: skip
    assert t["triage_reason"].dropna().to_dict() == dict(
        b="identity_inconsistent", c="view_inconsistent", d="identity_inconsistent", h="view_inconsistent"
    )
    # Without identity/view bands only the confidence band counts (the old "uncertain" policy).
    assert triage(c, Bands()).set_index("image_id")["triage"].to_dict()["e"] == "accept"


def test_uncertain_policy_selects_the_band_plus_a_seeded_audit_share():
    rng = np.random.default_rng(1)
    n = 20_000
    c = frame([(f"{k:05d}", f"id{k % 50}", 0.9, s, 0.9) for k, s in enumerate(rng.random(n))])
    bands = Bands(identity=(0.2, 0.3))  # 10 % of the scores are in the band, 20 % below, 70 % above
    pol = parse_policy("uncertain")
    none = select(c, pol, bands=bands)
    band = int(((c["identity_score"] >= 0.2) & (c["identity_score"] < 0.3)).sum())
    assert len(none) == band and not none["audit"].any() and set(none["triage"]) == {"uncertain"}
    audited = select(c, pol, bands=bands, audit_rate=0.05, seed=7)
    extra = audited[audited["audit"]]
    assert set(none["image_id"]) <= set(audited["image_id"])
    assert len(audited) == band + len(extra)
    assert abs(len(extra) - 0.05 * (n - band)) < 4 * np.sqrt(0.05 * 0.95 * (n - band))  # binomial, 4 sigma
    assert set(extra["triage"]) == {"accept", "reject"}  # audits cover automatic accepts and rejects
    again = select(c.sample(frac=1.0, random_state=3), pol, bands=bands, audit_rate=0.05, seed=7)
    assert list(again["image_id"]) == list(audited["image_id"])  # seeded, independent of the input order
    with pytest.raises(ValueError, match="audit_rate"):
        select(c, pol, bands=bands, audit_rate=1.5)


# ------------------------------------------------------------------------------------------------------------ stage
@pytest.mark.skipif(not TOY_SAM.is_file(), reason="models/toy/sam_view.pt is made by `make toy-models`")
def test_stage_with_checks_decides_the_clear_cases_and_sends_the_band_and_an_audit_to_people(tmp_path):
    torch.set_num_threads(1)
    root = toy_root(tmp_path / "w")
    ids = sorted({r["identity_id"] for r in dm.read_rows(root, "subjects")})
    nxt = {a: b for a, b in zip(ids, ids[1:] + ids[:1], strict=True)}
    relabel(root, lambda r, i: i % 6 == 0, identity_id=lambda r: nxt[r["identity_id"]])
    config = {
        "review": {
            "mode": "manual",
            "policy": "uncertain",
            "audit_rate": 0.25,
            "decide_rest": True,
            "batch_size": 50,
            "checks": {
                "enabled": True,
                "encoder": "colour_histogram",
                "segmenter_checkpoint": str(TOY_SAM),
                "identity_band": [0.55, 0.7],
                "view_band": [0.3, 0.5],
            },
        }
    }
    result = run_stage(config, root, None)
    assert result.counts["checked"] == 36
    det = {r["image_id"]: r for r in dm.read_rows(root, "detections")}
    reviews = dm.read_rows(root, "reviews")
    assert sorted(r["image_id"] for r in reviews) == sorted(det)  # every kept image: one decision or one batch row
    people = [r for r in reviews if r["decision"] == "pending"]
    auto = [r for r in reviews if r["decision"] != "pending"]
    assert people and auto and {r["reviewer"] for r in auto} == {"auto-policy"}
    assert {r["decision"] for r in auto} == {"accept", "reject"}
    for r in reviews:
        d = det[r["image_id"]]
        below_id, below_view = d["identity_score"] < 0.55, d["view_score"] is not None and d["view_score"] < 0.3
        if r["decision"] == "reject":
            assert r["triage"] == "reject" and r["status"] == "rejected"
            assert r["reason"] == ("identity_inconsistent" if below_id else "view_inconsistent")
            assert below_id or below_view
        if r["decision"] == "accept":
            assert r["triage"] == "accept" and not (below_id or below_view)
    uncertain = [r for r in people if r["triage"] == "uncertain"]
    audited = [r for r in people if r["triage"] in ("accept", "reject")]
    assert uncertain and len(uncertain) + len(audited) == len(people)
    assert result.counts["awaiting"] == len(people)
    assert {r["reason"] for r in auto if r["decision"] == "reject"} <= {"identity_inconsistent", "view_inconsistent"}
    assert not dm.validate(root)  # the new columns and codes are part of the schema
    # Re-running changes nothing: scored images are skipped, every image already has a row.
    before = sorted(dm.read_rows(root, "reviews"), key=lambda r: (r["image_id"], r["batch_id"]))
    again = run_stage(config, root, None)
    assert again.counts["checked"] == 0 and again.counts["exported_batches"] == 0
    assert sorted(dm.read_rows(root, "reviews"), key=lambda r: (r["image_id"], r["batch_id"])) == before
    # What share of the images did a person see? (diffveri manifests stats --root ROOT reports it.)
    cov = review_coverage(root)
    assert cov["images"] == 36 and cov["pending_for_a_person"] == len(people) and cov["seen_by_a_person"] == 0
