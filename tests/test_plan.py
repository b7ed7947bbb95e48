"""``diffveri plan``: the arithmetic on a small config, the review share by policy, and the paper profile."""

from __future__ import annotations

import math

import pytest

from pipeline.cli import main
from pipeline.config import load_config
from pipeline.plan import make_plan

HOUR = 3600.0


def small_config(**review) -> dict:
    return {
        "subjects": {"per_identity": 2},
        "assemble": {"include_real": True, "crops": True},
        "synthesize": {"views": ["front", "rear"], "steps": 10, "guidance": 7.5,
                       "plan": [{"backend": "diffusion", "images_per_view": 5}]},
        "dreambooth": {"steps": 100, "batch_size": 1, "gradient_accumulation": 1, "prior_preservation": True,
                       "num_class_images": 10, "class_sampler_steps": 5},
        "review": {"mode": "manual", "policy": "random:0.25", **review},
        "segment": {"finetune": {"steps": 10, "batch_size": 2, "train_image_encoder": False}},
        "plan": {
            "yields": {"synthesize": 1.0, "filter": 0.5, "review": 0.8, "segment": 1.0},
            "gpu": {"name": "unit", "tflops": 1.0},  # 1e12 FLOP/s: GPU-hours = TFLOPs / 3600
            "flops": {"unet_forward": 1e12, "vae_decode": 2e12, "vae_encode": 1e12, "detector": 1e12,
                      "segmenter": 2e12, "consistency": 1e12, "pretrain_image": 1e12, "train_factor": 3.0},
            "bytes": {"photo": 10, "generation": 100, "crop": 20, "lora": 1000, "manifest_row": 1},
            "classes": 1, "seconds_per_review": 4.0, "mask_images": 30, "seconds_per_mask_image": 120.0,
            "dreambooth_overhead_seconds": 0.0, "pretrain_epochs": 2,
        },
    }  # fmt: skip


def test_plan_arithmetic_on_a_small_config() -> None:
    plan = make_plan(small_config(), images=60)
    # 10 generations per identity (5 x 2 views) -> 10 * 0.5 * 0.8 = 4 synthetic + 2 real = 6 per identity.
    assert plan.per_identity == {"generated": 10.0, "synthetic": 4.0, "real": 2}
    assert plan.identities == 10
    s = {e.stage: e for e in plan.stages}
    assert (s["synthesize"].images_in, s["filter"].images_out, s["review"].images_out) == (100, 50, 40)
    assert s["assemble"].images_out == 60 and s["pretrain"].images_in == 60
    # synthesize: 100 images x (10 steps x 2 (guidance) x 1 + 2 VAE) TFLOPs
    assert s["synthesize"].gpu_hours == pytest.approx(100 * 22 / HOUR)
    # dreambooth: 10 ids x 100 steps x 2 samples (instance + prior) x (3 x 1 + 1) + 10 class images x (5 x 2 + 2)
    assert s["dreambooth"].gpu_hours == pytest.approx((10 * 100 * 2 * 4 + 10 * 12) / HOUR)
    assert s["filter"].gpu_hours == pytest.approx(100 / HOUR)
    # segment: 40 accepted x 2 + fine-tuning 10 steps x 2 images x 2 (frozen encoder: forward only)
    assert s["segment"].gpu_hours == pytest.approx((80 + 40) / HOUR)
    assert s["pretrain"].gpu_hours == pytest.approx(2 * 60 / HOUR)
    # people: a quarter of the 50 kept images at 4 s; 30 mask images at 120 s
    assert s["review"].annotator_hours == pytest.approx(50 * 0.25 * 4 / HOUR)
    assert s["segment"].annotator_hours == pytest.approx(1.0)
    # storage: 100 generations x (100 + 1 row); crops of the 40 segmented images
    assert s["synthesize"].storage_bytes == 100 * 101
    assert s["assemble"].storage_bytes == 60 * 1 + 40 * 20
    assert plan.totals()["annotator_hours"] == pytest.approx(50 * 0.25 * 4 / HOUR + 1.0)


def test_without_real_photos_more_identities_are_needed() -> None:
    config = small_config()
    config["assemble"]["include_real"] = False
    assert make_plan(config, images=60).identities == math.ceil(60 / 4)


def test_review_share_follows_the_policy() -> None:
    with pytest.raises(ValueError, match="plan.review_share"):
        make_plan(small_config(policy="uncertain", audit_rate=0.1), images=60)
    config = small_config(policy="uncertain", audit_rate=0.1)
    config["plan"]["review_share"] = 0.2
    assert make_plan(config, 60).assumptions["review_share"] == pytest.approx(0.2 + 0.8 * 0.1)
    assert make_plan(small_config(mode="auto"), 60).assumptions["review_share"] == 0.0
    assert make_plan(small_config(policy="all"), 60).assumptions["review_share"] == 1.0
    checks = small_config(checks={"enabled": True})
    review = {e.stage: e for e in make_plan(checks, 60).stages}["review"]
    # CLIP on kept images + subject photos, and the view check's segmenter on kept images
    assert review.gpu_hours == pytest.approx(((50 + 10 * 2) * 1 + 50 * 2) / HOUR)


def test_paper_plan_from_the_cli(capsys: pytest.CaptureFixture) -> None:
    config = load_config("configs/pipeline/paper.yaml", [])
    plan = make_plan(config, 1712703)
    assert plan.per_identity["generated"] == 9 * 25  # 9 views x 25 images per view
    assert {e.stage: e for e in plan.stages}["assemble"].images_out >= 1712703
    assert main(["plan", "--config", "configs/pipeline/paper.yaml", "--images", "1712703"]) == 0
    out = capsys.readouterr().out
    assert f"{plan.identities:,} identities" in out and "| pretrain |" in out
    assert main(["plan", "--config", "configs/pipeline/paper.yaml", "--images", "0"]) == 2


def test_pilot_measures_the_yields(tmp_path) -> None:
    from pipeline.plan import measure_pilot, with_pilot
    from tests.assemble.roots import build_root

    build_root(tmp_path, n_ids=6, per_id=6)  # 36 generations, 1 dropped by the filter, 1 rejected by a reviewer
    measured = measure_pilot(tmp_path)
    assert measured == {"synthesize": 1.0, "filter": round(35 / 36, 4), "review": round(34 / 35, 4),
                        "segment": 1.0, "review_share": 1.0}  # fmt: skip
    plan = make_plan(with_pilot(small_config(policy="uncertain"), measured), images=60)
    assert plan.assumptions["review_share"] == 1.0  # as measured, whatever the policy
    assert plan.per_identity["synthetic"] == pytest.approx(10 * 35 / 36 * 34 / 35, abs=1e-3)
    assert main(["plan", "--config", "configs/pipeline/paper.yaml", "--images", "1000", "--root", str(tmp_path)]) == 0
