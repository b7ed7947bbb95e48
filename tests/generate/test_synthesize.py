"""Multi-view synthesis: prompt bank, determinism, resume, budget, provenance, both backends, input errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import data_manifests as dm
from data_manifests import INTENDED_VIEWS, rle
from pipeline.generate.common import ModelsConfig, model_sha256
from pipeline.generate.dreambooth import DreamBoothConfig, run_dreambooth
from pipeline.generate.synthesize import SynthesizeConfig, load_prompt_bank, run_synthesize

from .helpers import make_toy_subjects

TOY = dict(width=32, height=32, batch_size=4, toyworld_background=False)


def _cfg(plan: list[dict], **kw) -> SynthesizeConfig:
    return SynthesizeConfig(plan=plan, **{**TOY, "steps": 2, **kw})


def test_prompt_bank_covers_every_view_with_negatives() -> None:
    bank = load_prompt_bank()
    assert set(bank) == set(INTENDED_VIEWS)
    for entry in bank.values():
        assert "{token}" in entry.prompt and "{class_name}" in entry.prompt
        assert "blurry" in entry.negative_prompt  # the shared part
        assert entry.negative_prompt.count(",") > 5  # ... plus the view's own


def test_prompt_bank_with_unknown_view_is_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "bank.yaml"
    bad.write_text("views:\n  front: {prompt: a}\n  sideways: {prompt: b}\n")
    with pytest.raises(ValueError, match=r"bank.yaml.*unknown view name\(s\) \['sideways'\]"):
        load_prompt_bank(bad)


def test_unknown_view_in_config_is_an_error_and_writes_nothing(toy_root: Path, models: ModelsConfig) -> None:
    with pytest.raises(ValueError, match=r"unknown view name\(s\) \['diagonal'\]"):
        run_synthesize(
            root=toy_root,
            models=models,
            cfg=_cfg([{"backend": "toyworld", "images_per_view": 1}], views=["front", "diagonal"]),
        )
    with pytest.raises(ValueError, match="valid backends"):
        run_synthesize(root=toy_root, models=models, cfg=_cfg([{"backend": "gan", "images_per_view": 1}]))
    assert dm.list_tables(toy_root) == ["subjects"]


def test_toyworld_synthesis_rows_masks_resume_and_determinism(
    toy_root: Path, models: ModelsConfig, tmp_path: Path
) -> None:
    cfg = _cfg([{"backend": "toyworld", "images_per_view": 1}])
    counts = run_synthesize(root=toy_root, models=models, cfg=cfg, progress_bar=False)
    n = 2 * len(INTENDED_VIEWS)
    assert counts == {"processed": n, "skipped": 0, "failed": 0, "pending": 0}
    rows = dm.read_rows(toy_root, "generations")
    assert len(rows) == n and {r["model_ref"] for r in rows} == {"toyworld:v1"}
    assert {r["intended_view"] for r in rows} == set(INTENDED_VIEWS)
    gt = {r["image_id"]: r for r in dm.read_rows(toy_root, "segments_gt")}
    for row in rows:
        assert row["image_id"] == dm.image_id(row["identity_id"], row["intended_view"], row["seed"], row["model_ref"])
        assert dm.sha256_file(toy_root / row["path"]) == row["sha256"]
        assert Image.open(toy_root / row["path"]).size == (32, 32) and row["width"] == 32
        assert row["prompt"] and row["negative_prompt"] and row["status"] == "ok"
        g = gt[row["image_id"]]
        assert g["segmenter_ref"] == "groundtruth:toyworld" and g["view_classes"][0] == "background"
        assert rle.area(g["vehicle_rle"]) > 0 and sum(g["view_fractions"]) == pytest.approx(1.0)
    assert dm.validate(toy_root) == []
    # A second run skips everything and changes nothing.
    again = run_synthesize(root=toy_root, models=models, cfg=cfg, progress_bar=False)
    assert again == {"processed": 0, "skipped": n, "failed": 0, "pending": 0}
    assert dm.read_rows(toy_root, "generations") == rows
    # Same seeds in another root: identical ids and bytes.
    other = tmp_path / "other"
    make_toy_subjects(other)
    run_synthesize(root=other, models=models, cfg=cfg, progress_bar=False)
    assert {(r["image_id"], r["sha256"]) for r in dm.read_rows(other, "generations")} == {
        (r["image_id"], r["sha256"]) for r in rows
    }


def test_budget_leaves_pending_rows_that_a_later_run_completes(toy_root: Path, models: ModelsConfig) -> None:
    cfg = _cfg([{"backend": "toyworld", "images_per_view": 1, "views": ["front", "rear", "top"]}], max_images=4)
    counts = run_synthesize(root=toy_root, models=models, cfg=cfg, progress_bar=False)
    assert counts["processed"] == 4 and counts["pending"] == 2
    pending = [r for r in dm.read_rows(toy_root, "generations") if r["status"] == "pending"]
    assert {r["reason"] for r in pending} == {"budget_exhausted"} and all(r["path"] is None for r in pending)
    cfg.max_images = None
    assert run_synthesize(root=toy_root, models=models, cfg=cfg, progress_bar=False)["processed"] == 2
    assert {r["status"] for r in dm.read_rows(toy_root, "generations")} == {"ok"}


def test_diffusion_without_dreambooth_records_upstream_failure(toy_root: Path, models: ModelsConfig) -> None:
    cfg = _cfg([{"backend": "diffusion", "images_per_view": 1, "views": ["front"]}])
    counts = run_synthesize(root=toy_root, models=models, cfg=cfg, progress_bar=False)
    assert counts["failed"] == 2 and counts["processed"] == 0
    rows = dm.read_rows(toy_root, "generations")
    assert {r["reason"] for r in rows} == {"upstream_not_ok"}
    assert all("dreambooth" in r["message"] for r in rows)


def test_diffusion_backend_same_seed_same_image(tiny_model: Path) -> None:
    from pipeline.generate.backends import DiffusionBackend, Request

    backend = DiffusionBackend(
        base_model=tiny_model, scheduler="ddim", steps=2, guidance=7.5, width=32, height=32, device="cpu"
    )
    reqs = [
        Request("a", "front", i, seed, "a photo of zeqa sedan, front view", "blurry") for i, seed in enumerate([5, 6])
    ]
    first = backend.generate(reqs)
    again = backend.generate(reqs)
    assert all(np.array_equal(a.image, b.image) for a, b in zip(first, again))
    # One generator per image: another batch order gives the same image up to float rounding of batched kernels.
    swapped = backend.generate(reqs[::-1])
    assert np.abs(first[0].image.astype(int) - swapped[1].image.astype(int)).max() <= 2
    assert not np.array_equal(first[0].image, first[1].image)
    assert first[0].image.shape == (32, 32, 3) and first[0].image.dtype == np.uint8


def test_diffusion_with_lora_end_to_end(toy_root: Path, models: ModelsConfig, tiny_model: Path, tmp_path: Path) -> None:
    db = DreamBoothConfig(resolution=32, steps=1, prior_preservation=False, cpu=True)
    run_dreambooth(root=toy_root, models=models, cfg=db, progress_bar=False)
    loras = {r["identity_id"]: r["lora_sha256"] for r in dm.read_rows(toy_root, "dreambooth")}
    cfg = _cfg([{"backend": "diffusion", "images_per_view": 1, "views": ["front", "left"]}], device="cpu")
    counts = run_synthesize(root=toy_root, models=models, cfg=cfg, progress_bar=False)
    assert counts["processed"] == 4
    rows = dm.read_rows(toy_root, "generations")
    ref = f"diffusion:tiny-sd@{model_sha256(tiny_model)[:12]}"
    for row in rows:
        assert row["model_ref"] == ref and row["lora_sha256"] == loras[row["identity_id"]]
        assert row["scheduler"] == "ddim" and row["steps"] == 2 and row["guidance"] == pytest.approx(7.5)
        token = row["prompt"].split()[3]  # "a photo of <token> <class>, ..."
        assert len(token) == 4 and token.isalpha()
    assert dm.validate(toy_root) == []
    # The same seed reproduces the same image exactly (regenerate after deleting the images and rows).
    before = {r["image_id"]: r["sha256"] for r in rows}
    dm.delete_rows(toy_root, "generations", list(before))
    run_synthesize(root=toy_root, models=models, cfg=cfg, progress_bar=False)
    assert {r["image_id"]: r["sha256"] for r in dm.read_rows(toy_root, "generations")} == before
    # The adapter matters: two identities' front images differ although their pixels come from one base model.
    images = [np.asarray(Image.open(toy_root / r["path"])) for r in rows if r["intended_view"] == "front"]
    assert not np.array_equal(images[0], images[1])


def test_missing_base_model_for_diffusion_is_a_clear_error(toy_root: Path, tmp_path: Path) -> None:
    cfg = _cfg([{"backend": "diffusion", "images_per_view": 1}])
    with pytest.raises(FileNotFoundError, match="missing-model"):
        run_synthesize(root=toy_root, models=ModelsConfig(base=str(tmp_path / "missing-model")), cfg=cfg)
    assert dm.list_tables(toy_root) == ["subjects"]
