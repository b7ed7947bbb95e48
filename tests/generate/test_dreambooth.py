"""DreamBooth: the loss halves, LoRA-only updates, exact resume, failure rows and input errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import data_manifests as dm
from pipeline.generate.common import ModelsConfig, model_sha256
from pipeline.generate.dreambooth import (
    UNET_TARGETS,
    DreamBoothConfig,
    InputError,
    adapter_info,
    dreambooth_loss,
    lora_config,
    run_dreambooth,
    train_identity,
    training_step,
)

FAST = dict(resolution=32, steps=2, num_class_images=2, class_sampler_steps=2, checkpoint_every=1, cpu=True)


def test_prior_loss_is_computed_on_the_class_half() -> None:
    target = torch.zeros(4, 4, 2, 2)
    pred = torch.cat([torch.full((2, 4, 2, 2), 1.0), torch.full((2, 4, 2, 2), 3.0)])  # instance err 1, class err 3
    loss, inst, prior = dreambooth_loss(pred, target, n_instance=2, prior_weight=0.5)
    assert inst.item() == pytest.approx(1.0) and prior.item() == pytest.approx(9.0)
    assert loss.item() == pytest.approx(1.0 + 0.5 * 9.0)
    # Without a class half there is no prior term.
    loss, inst, prior = dreambooth_loss(pred[:2], target[:2], n_instance=2, prior_weight=0.5)
    assert prior is None and loss.item() == pytest.approx(1.0)


def test_training_step_updates_lora_only(tiny_model: Path) -> None:
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(tiny_model, subfolder="unet", local_files_only=True)
    vae = AutoencoderKL.from_pretrained(tiny_model, subfolder="vae", local_files_only=True)
    sched = DDPMScheduler.from_pretrained(tiny_model, subfolder="scheduler", local_files_only=True)
    unet.requires_grad_(False)
    unet.add_adapter(lora_config(4, None, UNET_TARGETS))
    before = {k: v.detach().clone() for k, v in unet.state_dict().items()}
    trainable = [p for p in unet.parameters() if p.requires_grad]
    assert trainable and all("lora" in n for n, p in unet.named_parameters() if p.requires_grad)
    optimizer = torch.optim.AdamW(trainable, lr=1e-2)
    g = torch.Generator().manual_seed(0)
    loss, _, prior = training_step(
        unet=unet,
        vae=vae,
        noise_scheduler=sched,
        pixels=torch.rand(2, 3, 32, 32, generator=g) * 2 - 1,
        encoder_hidden_states=torch.randn(2, 77, 32, generator=g),
        n_instance=1,
        prior_weight=1.0,
        generator=g,
    )
    assert prior is not None
    loss.backward()
    optimizer.step()
    after = unet.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all("lora" in k for k in changed)
    assert any("lora_B" in k for k in changed)  # B starts at zero; it must move for the adapter to do anything


def test_dreambooth_two_identities_end_to_end(toy_root: Path, models: ModelsConfig, tiny_model: Path) -> None:
    base_sha = model_sha256(tiny_model)
    cfg = DreamBoothConfig(**FAST)
    results = run_dreambooth(root=toy_root, models=models, cfg=cfg, progress_bar=False)
    assert [r.status for r in results] == ["ok", "ok"]
    rows = dm.read_rows(toy_root, "dreambooth")
    assert dm.validate(toy_root) == []
    for row in rows:
        assert row["steps"] == 2 and row["final_loss"] > 0 and row["status"] == "ok"
        path = toy_root / row["lora_path"]
        assert dm.sha256_file(path) == row["lora_sha256"]
        state = load_file(str(path))
        assert state and all(k.startswith("unet.") and "lora_" in k for k in state)
        assert any(v.abs().sum() > 0 for k, v in state.items() if "lora_B" in k)
        assert adapter_info(path)["base_model_sha256"] == base_sha
        assert not (path.parent / "checkpoints").exists()
    assert model_sha256(tiny_model) == base_sha  # the base model is never written
    # Class images were generated once for the class and cached.
    assert len(list((toy_root / "dreambooth" / "class_images").rglob("*.png"))) == 2 * len(
        {r["class_name"] for r in dm.read_rows(toy_root, "subjects")}
    )
    # A second run skips everything.
    again = run_dreambooth(root=toy_root, models=models, cfg=cfg, progress_bar=False)
    assert [r.status for r in again] == ["skipped", "skipped"]
    assert dm.read_rows(toy_root, "dreambooth") == rows


def test_resume_from_checkpoint_is_exact(toy_root: Path, tiny_model: Path, tmp_path: Path) -> None:
    cfg = DreamBoothConfig(**{**FAST, "steps": 2, "gradient_accumulation": 2, "prior_preservation": False})
    subject = dm.read_rows(toy_root, "subjects")[0]
    kwargs = dict(
        base_model=tiny_model,
        instance_images=[toy_root / p for p in subject["instance_images"]],
        class_images=[],
        instance_prompt="a photo of zeqa sedan",
        class_prompt="a photo of a sedan",
        cfg=cfg,
        seed=7,
        progress_bar=False,
    )
    straight, steps, loss = train_identity(work_dir=tmp_path / "a", **kwargs)
    _, partial_steps, _ = train_identity(work_dir=tmp_path / "b", stop_at=1, **kwargs)
    assert partial_steps == 1 and (tmp_path / "b" / "checkpoints" / "checkpoint-last.pt").is_file()
    resumed, steps_b, loss_b = train_identity(work_dir=tmp_path / "b", **kwargs)
    assert steps == steps_b == 2 and loss_b == pytest.approx(loss, rel=1e-6)
    for key in straight:
        torch.testing.assert_close(resumed[key], straight[key], rtol=0, atol=1e-6)
    # a checkpoint trained with other settings is refused, naming them; resume=False starts over
    train_identity(work_dir=tmp_path / "c", stop_at=1, **kwargs)
    other = DreamBoothConfig(**{**FAST, "steps": 2, "gradient_accumulation": 2, "prior_preservation": False, "rank": 2})
    with pytest.raises(ValueError, match=r"rank: .*--no-resume"):
        train_identity(work_dir=tmp_path / "c", **{**kwargs, "cfg": other})
    _, steps_c, _ = train_identity(work_dir=tmp_path / "c", resume=False, stop_at=1, **{**kwargs, "cfg": other})
    assert steps_c == 1


def _tables(root: Path) -> list[str]:
    return dm.list_tables(root)


def test_missing_instance_image_is_a_clear_error_and_writes_nothing(toy_root: Path, models: ModelsConfig) -> None:
    row = dm.read_rows(toy_root, "subjects")[1]
    missing = toy_root / row["instance_images"][0]
    missing.unlink()
    with pytest.raises(InputError) as err:
        run_dreambooth(root=toy_root, models=models, cfg=DreamBoothConfig(**FAST), progress_bar=False)
    assert row["identity_id"] in str(err.value) and str(missing) in str(err.value)
    assert _tables(toy_root) == ["subjects"] and not (toy_root / "dreambooth").exists()


def test_unreadable_instance_image_is_a_clear_error(toy_root: Path, models: ModelsConfig) -> None:
    row = dm.read_rows(toy_root, "subjects")[0]
    bad = toy_root / row["instance_images"][1]
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(InputError, match="not a readable image") as err:
        run_dreambooth(root=toy_root, models=models, cfg=DreamBoothConfig(**FAST), progress_bar=False)
    assert row["identity_id"] in str(err.value) and str(bad) in str(err.value)
    assert _tables(toy_root) == ["subjects"]


def test_non_strict_records_the_bad_identity_and_trains_the_other(toy_root: Path, models: ModelsConfig) -> None:
    rows = dm.read_rows(toy_root, "subjects")
    (toy_root / rows[0]["instance_images"][0]).unlink()
    cfg = DreamBoothConfig(**{**FAST, "strict_inputs": False, "steps": 1, "prior_preservation": False})
    results = {r.identity_id: r for r in run_dreambooth(root=toy_root, models=models, cfg=cfg, progress_bar=False)}
    assert results[rows[0]["identity_id"]].status == "failed"
    assert results[rows[0]["identity_id"]].reason == "missing_file"
    assert results[rows[1]["identity_id"]].status == "ok"
    by_id = {r["identity_id"]: r for r in dm.read_rows(toy_root, "dreambooth")}
    assert (
        by_id[rows[0]["identity_id"]]["status"] == "failed"
        and "does not exist" in by_id[rows[0]["identity_id"]]["message"]
    )


def test_duplicate_and_unknown_identities_are_errors(toy_root: Path, models: ModelsConfig) -> None:
    ident = dm.read_rows(toy_root, "subjects")[0]["identity_id"]
    with pytest.raises(InputError, match=f"duplicate identity id.*{ident}"):
        run_dreambooth(root=toy_root, models=models, cfg=DreamBoothConfig(**FAST), identities=[ident, ident])
    with pytest.raises(InputError, match="nope"):
        run_dreambooth(root=toy_root, models=models, cfg=DreamBoothConfig(**FAST), identities=["nope"])
    assert _tables(toy_root) == ["subjects"]


def test_missing_base_model_is_a_clear_error(toy_root: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(FileNotFoundError, match="no-such-model.*does not exist.*toy sd"):
        run_dreambooth(root=toy_root, models=ModelsConfig(base=str(missing)), cfg=DreamBoothConfig(**FAST))
    assert _tables(toy_root) == ["subjects"] and not (toy_root / "dreambooth").exists()


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ValueError, match="dreambooth.mode"):
        DreamBoothConfig(mode="dora")
    with pytest.raises(ValueError, match="mixed_precision"):
        DreamBoothConfig(mixed_precision="fp8")


def test_deprecated_keep_checkpoints_still_loads_and_warns(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from pipeline.config import load_config

    for profile in ("toy", "paper"):  # the shipped configs no longer set it
        assert load_config(profile)["dreambooth"]["keep_checkpoints"] is None
    assert "keep_checkpoints" not in capsys.readouterr().err
    old = tmp_path / "old.yaml"
    old.write_text("dreambooth:\n  keep_checkpoints: 3\n")
    assert load_config(old)["dreambooth"]["keep_checkpoints"] == 3
    assert "dreambooth.keep_checkpoints is deprecated and has no effect" in capsys.readouterr().err


@pytest.mark.parametrize("options", [{"train_text_encoder": True}, {"mode": "full"}], ids=["lora+text", "full"])
def test_other_modes_train_apply_and_remove(toy_root: Path, tiny_model: Path, tmp_path: Path, options: dict) -> None:
    from diffusers import StableDiffusionPipeline

    from pipeline.generate.dreambooth import load_adapter, save_adapter

    cfg = DreamBoothConfig(**{**FAST, "steps": 1, "prior_preservation": False, **options})
    subject = dm.read_rows(toy_root, "subjects")[0]
    state, _, _ = train_identity(
        base_model=tiny_model,
        instance_images=[toy_root / p for p in subject["instance_images"]],
        class_images=[],
        instance_prompt="a photo of zeqa sedan",
        class_prompt="a photo of a sedan",
        work_dir=tmp_path / "w",
        cfg=cfg,
        seed=0,
        progress_bar=False,
    )
    prefixes = {k.split(".")[0] for k in state}
    assert prefixes == ({"unet", "text_encoder"} if cfg.train_text_encoder else {"unet"})
    path = tmp_path / "adapter.safetensors"
    save_adapter(path, state, {"mode": cfg.mode, "rank": 4, "alpha": 4})
    pipe = StableDiffusionPipeline.from_pretrained(tiny_model, local_files_only=True, safety_checker=None)
    pipe.set_progress_bar_config(disable=True)

    def draw() -> np.ndarray:
        g = torch.Generator().manual_seed(3)
        return pipe(
            "a photo of zeqa sedan", num_inference_steps=2, height=32, width=32, generator=g, output_type="np"
        ).images

    before = draw()
    remove = load_adapter(pipe, path, adapter_name="x")
    assert not np.array_equal(draw(), before)  # the trained weights are in use
    remove()
    np.testing.assert_array_equal(draw(), before)  # and gone again: the base model draws exactly as before


def test_identities_trained_in_threads_match_a_sequential_run(models: ModelsConfig, tmp_path: Path) -> None:
    """Shards of the Prefect flow may run in threads of one process; accelerate's global state must not leak."""
    from concurrent.futures import ThreadPoolExecutor

    from .helpers import make_toy_subjects

    cfg = DreamBoothConfig(**{**FAST, "gradient_accumulation": 2, "num_class_images": 1})
    seq, par = tmp_path / "seq", tmp_path / "par"
    ids = make_toy_subjects(seq)
    make_toy_subjects(par)
    run_dreambooth(root=seq, models=models, cfg=cfg, progress_bar=False)
    with ThreadPoolExecutor(2) as pool:
        list(
            pool.map(
                lambda i: run_dreambooth(root=par, models=models, cfg=cfg, identities=[i], progress_bar=False), ids
            )
        )
    sha = lambda root: {r["identity_id"]: r["lora_sha256"] for r in dm.read_rows(root, "dreambooth")}  # noqa: E731
    assert sha(par) == sha(seq) and len(sha(seq)) == 2
