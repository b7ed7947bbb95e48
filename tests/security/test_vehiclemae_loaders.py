"""vehiclemae loads checkpoints weights-only: crafted files are refused before anything in them runs.

Entry points: ``load_checkpoint`` (``vehiclemae train`` resuming, ``export``, ``viz-recon``),
``reid.checkpoints.load_model`` (``vehiclemae eval``) and ``reid.runner.run`` (``vehiclemae finetune`` resuming).
Real checkpoints of each kind still load, and so do pre-training checkpoints written before the RNG state was
stored in plain form.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.toyworld.synthetic import write_diffveri
from tests.reid.layouts import make_veri
from tests.vehiclemae.helpers import toy_config
from vehiclemae.cli import main
from vehiclemae.engine import run_pretraining
from vehiclemae.engine.checkpoint import FORMAT, load_checkpoint, save_checkpoint, set_rng_states
from vehiclemae.reid import finetune as ft
from vehiclemae.reid.checkpoints import CHECKPOINT_FORMAT, load_model, save_reid_checkpoint

from .payloads import HOWS, write_damaged, write_payload, write_plain_pickle_payload

REPO = Path(__file__).resolve().parents[2]
PRETRAIN_SETS = ["epochs=2", "optim.batch_size=8", "model.img_size=32", "log_every=1"]


@pytest.fixture(autouse=True)
def _small_threads_and_fresh_accelerate():
    torch.set_num_threads(1)
    yield
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(diffveri root, run folder after 1 of 2 pre-training epochs) — tiny, shared by the module."""
    base = tmp_path_factory.mktemp("security-vehiclemae")
    root = write_diffveri(base / "diffveri", identities=6, size=64)
    run = base / "run"
    cfg = toy_config(root, run, **dict(s.split("=") for s in PRETRAIN_SETS))
    run_pretraining(cfg, stop_after_epoch=1)
    return root, run


def _refused(exc: pytest.ExceptionInfo, path: Path) -> None:
    message = str(exc.value)
    assert str(path) in message and "not a safe checkpoint" in message and "nothing in it was run" in message
    assert "\n" not in message


# ------------------------------------------------------------------------------------- pre-training checkpoints
@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # the bare pickle's protocol 5
@pytest.mark.parametrize("how", HOWS)
def test_load_checkpoint_refuses_a_payload_and_runs_nothing(tmp_path: Path, how: str) -> None:
    marker = tmp_path / "ran"
    crafted = write_payload(tmp_path / "checkpoint-last.pt", marker, how, around={"format": FORMAT, "epoch": 1})
    with pytest.raises(ValueError) as exc:
        load_checkpoint(crafted)
    _refused(exc, crafted)
    assert not marker.exists()
    plain = write_plain_pickle_payload(tmp_path / "plain.pt", marker)
    with pytest.raises(ValueError) as exc:
        load_checkpoint(plain)
    _refused(exc, plain)
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["empty", "truncated", "garbage"])
def test_damaged_checkpoints_get_a_one_line_error(tmp_path: Path, kind: str) -> None:
    good = tmp_path / "good.pt"
    save_checkpoint(good, {"epoch": 1, "model": {"w": torch.randn(64, 64)}})
    bad = write_damaged(tmp_path / "bad.pt", kind, good)
    with pytest.raises(ValueError, match="not a readable checkpoint") as exc:
        load_checkpoint(bad)
    assert str(bad) in str(exc.value) and "\n" not in str(exc.value)


def test_cli_commands_refuse_a_crafted_checkpoint(pretrained, tmp_path: Path, capsys) -> None:
    """`vehiclemae train --resume`, `export`, `viz-recon`: exit code 2, one line naming the file, marker absent."""
    root, _ = pretrained
    marker = tmp_path / "ran"
    run = tmp_path / "run"
    crafted = write_payload(run / "checkpoints" / "checkpoint-last.pt", marker, around={"format": FORMAT})
    sets = [f"data.root={root}", f"output_dir={run}", *PRETRAIN_SETS]
    config = REPO / "configs" / "vehiclemae" / "toy.yaml"
    train = ["train", "--config", str(config), *[a for s in sets for a in ("--set", s)]]
    commands = [
        [*train, "--resume"],
        ["export", "--checkpoint", str(crafted), "--out", str(tmp_path / "enc.safetensors")],
        ["viz-recon", "--checkpoint", str(run), "--out", str(tmp_path / "grid.png")],
    ]
    for argv in commands:
        assert main(argv) == 2, argv[0]
        err = capsys.readouterr().err
        assert str(crafted) in err and "not a safe checkpoint" in err, (argv[0], err)
        assert not marker.exists(), argv[0]
    assert not (tmp_path / "enc.safetensors").exists() and not (tmp_path / "grid.png").exists()


def test_pretraining_checkpoint_round_trip(pretrained, tmp_path: Path) -> None:
    """A real checkpoint holds only weights-only types, loads, restores the RNGs, and exports."""
    _, run = pretrained
    last = run / "checkpoints" / "checkpoint-last.pt"
    assert torch.serialization.get_unsafe_globals_in_checkpoint(last) == []  # nothing to allow-list
    ck = load_checkpoint(run)
    assert ck["epoch"] == 1 and ck["model"] and ck["optimizer"]["state"] and ck["teachers"]
    set_rng_states(ck["rng"])
    first = (random.random(), np.random.rand(3), torch.rand(3))
    set_rng_states(load_checkpoint(last)["rng"])
    assert first[0] == random.random() and np.array_equal(first[1], np.random.rand(3))
    assert torch.equal(first[2], torch.rand(3))
    assert main(["export", "--checkpoint", str(last), "--out", str(tmp_path / "enc.safetensors")]) == 0


def test_checkpoints_of_the_previous_format_still_load_and_resume(pretrained, tmp_path: Path) -> None:
    """Before this version the numpy RNG state was ``np.random.get_state()`` (a uint32 array): still read, exactly
    that array type is allowed, and a run resumes from such a checkpoint."""
    root, run = pretrained
    old_run = tmp_path / "old"
    shutil.copytree(run, old_run)
    last = old_run / "checkpoints" / "checkpoint-last.pt"
    payload = torch.load(last, map_location="cpu", weights_only=True)
    np.random.seed(3)
    payload["rng"]["numpy"] = np.random.get_state()
    expected = np.random.rand(4)
    torch.save(payload, last)
    set_rng_states(load_checkpoint(last)["rng"])
    assert np.array_equal(np.random.rand(4), expected)
    cfg = toy_config(root, old_run, **dict(s.split("=") for s in PRETRAIN_SETS))
    assert load_checkpoint(run_pretraining(cfg, resume=True))["epoch"] == 2
    # the allow-list for old files is exact: a float64 array (another dtype) is still refused
    payload["extra"] = np.zeros(2)
    torch.save(payload, last)
    with pytest.raises(ValueError, match="Float64DType"):
        load_checkpoint(last)


# ------------------------------------------------------------------------------------- Re-ID fine-tuning checkpoints
def _reid_model() -> ft.ReIDModel:
    torch.manual_seed(0)
    backbone, spec = ft.build_backbone("scratch", "vehiclemae_vit_toy_patch8", 32)
    return ft.ReIDModel(backbone, 4, spec).eval()


def test_eval_refuses_a_crafted_reid_checkpoint(tmp_path: Path, capsys) -> None:
    """`vehiclemae eval` (reid.checkpoints.load_model): refused before the dataset is even read; marker absent."""
    marker = tmp_path / "ran"
    crafted = write_payload(tmp_path / "best.pth", marker, around={"format": CHECKPOINT_FORMAT})
    with pytest.raises(ValueError) as exc:
        load_model(crafted)
    _refused(exc, crafted)
    assert main(["eval", "--checkpoint", str(crafted), "--dataset", "veri776", "--root", str(tmp_path)]) == 2
    assert "not a safe checkpoint" in capsys.readouterr().err
    assert not marker.exists()


def test_reid_checkpoint_round_trip(tmp_path: Path) -> None:
    model = _reid_model()
    path = save_reid_checkpoint(tmp_path / "best.pth", model, epoch=3, metrics={"mAP": 1.5}, config={"seed": 0})
    loaded, size = load_model(path)
    x = torch.randn(2, 3, 32, 32)
    assert size == 32
    torch.testing.assert_close(loaded(x), model(x))


def _finetune_argv(root: Path, out: Path) -> list[str]:
    sets = [
        f"data.root={root}", "model.img_size=32", "data.p=4", "data.k=2", "optim.epochs=2", "optim.warmup_epochs=0.5",
        "eval.every=0", "threads=1", "data.val_identities=0",
    ]  # fmt: skip
    config = REPO / "configs" / "vehiclemae" / "finetune_toy.yaml"
    return ["finetune", "--config", str(config), "--out", str(out), *[a for s in sets for a in ("--set", s)]]


def test_finetune_resume_refuses_a_crafted_last_checkpoint_and_resumes_a_real_one(tmp_path: Path, capsys) -> None:
    root = make_veri(tmp_path / "VeRi", train_ids=4, test_ids=2, cams=2, per_cam=2)
    marker = tmp_path / "ran"
    crafted_run = tmp_path / "crafted"
    crafted = write_payload(
        crafted_run / "checkpoints" / "checkpoint-last.pt", marker, around={"format": CHECKPOINT_FORMAT, "epoch": 0}
    )
    assert main(_finetune_argv(root, crafted_run)) == 2
    err = capsys.readouterr().err
    assert str(crafted) in err and "not a safe checkpoint" in err
    assert not marker.exists()
    # ... also under the old name last.pth (moved into checkpoints/ for one release, then refused all the same)
    old_run = tmp_path / "old"
    write_payload(old_run / "last.pth", marker, around={"format": CHECKPOINT_FORMAT, "epoch": 0})
    with pytest.warns(FutureWarning, match="old checkpoint name"):
        assert main(_finetune_argv(root, old_run)) == 2
    assert "not a safe checkpoint" in capsys.readouterr().err and not marker.exists()
    # a real checkpoint: stop after one epoch, resume for the second
    real = tmp_path / "real"
    last = real / "checkpoints" / "checkpoint-last.pt"
    assert main([*_finetune_argv(root, real), "--stop-after-epoch", "1"]) == 0
    assert torch.serialization.get_unsafe_globals_in_checkpoint(last) == []
    assert main(_finetune_argv(root, real)) == 0
    assert torch.load(last, map_location="cpu", weights_only=True)["epoch"] == 1
