"""Experiment trackers (accelerate): TensorBoard by default, wandb offline, config errors; logging changes nothing."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from vehiclemae.engine import run_pretraining
from vehiclemae.engine.checkpoint import load_checkpoint
from vehiclemae.engine.tracking import flat_config, parse_log_with

from .helpers import toy_config

SMALL = {"epochs": 2, "model.img_size": 32, "monitor.probe_size": 0}


def _events(folder: Path) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"images": 0, "scalars": 0}).Reload()
    tags = acc.Tags()
    scalars = {t: [e.step for e in acc.Scalars(t)] for t in tags["scalars"]}
    images = {t: [e.step for e in acc.Images(t)] for t in tags["images"]}
    return scalars, images


def test_tensorboard_gets_scalars_and_reconstructions_and_the_run_is_unchanged(diffveri_root: Path, tmp_path: Path):
    plain = run_pretraining(toy_config(diffveri_root, tmp_path / "none", log_with="none", **SMALL))
    logged = run_pretraining(toy_config(diffveri_root, tmp_path / "tb", **SMALL))  # default: tensorboard + images
    a, b = load_checkpoint(plain), load_checkpoint(logged)
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])  # the pictures drew nothing from the training's RNG
    assert not (tmp_path / "none" / "tensorboard").exists()
    scalars, images = _events(tmp_path / "tb" / "tensorboard")
    steps = b["global_step"]
    assert scalars["train/loss"][-1] == steps and "epoch/loss_rgb" in scalars
    assert images["reconstructions"] == [steps // 2, steps]  # one picture per epoch, at the epoch's last step


@pytest.mark.skipif(importlib.util.find_spec("wandb") is None, reason="the trackers extra (wandb) is not installed")
def test_wandb_logs_offline_into_the_run_folder(diffveri_root: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    for var in ("WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_CONFIG_DIR"):  # nothing written to the home folder
        monkeypatch.setenv(var, str(tmp_path / "wandb-home"))
    run_pretraining(toy_config(diffveri_root, tmp_path / "w", log_with="wandb", **{**SMALL, "epochs": 1}))
    runs = list((tmp_path / "w" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    # The offline run's record log (protobuf; `wandb sync` uploads it) holds the metric names, config and images.
    (record_log,) = runs[0].glob("run-*.wandb")
    data = record_log.read_bytes()
    for key in (b"train/loss", b"epoch/loss_rgb", b"optim.blr", b"reconstructions"):
        assert key in data, key
    assert list((runs[0] / "files" / "media" / "images").glob("reconstructions_*.png"))


def test_log_with_errors_name_the_fix(diffveri_root: Path, tmp_path: Path) -> None:
    assert parse_log_with("tensorboard, none") == ["tensorboard"] and parse_log_with("none") == []
    with pytest.raises(ValueError, match="unknown tracker.*comet.*valid: tensorboard, wandb, mlflow"):
        parse_log_with("tensorboard,comet")
    with pytest.raises(ValueError, match="unknown tracker"):  # before any work: no run folder
        run_pretraining(toy_config(diffveri_root, tmp_path / "bad", log_with="comet", **SMALL))
    assert not (tmp_path / "bad").exists()
    if importlib.util.find_spec("mlflow") is None:
        with pytest.raises(ValueError, match="needs the mlflow package: pip install mlflow"):
            parse_log_with("mlflow")


def test_flat_config_keeps_only_tracker_types() -> None:
    flat = flat_config({"a": {"b": 1, "c": (1, 2), "d": None}, "e": True, "f": "x"})
    assert flat == {"a.b": 1, "a.c": "(1, 2)", "a.d": "none", "e": True, "f": "x"}
