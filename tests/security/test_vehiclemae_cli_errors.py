"""vehiclemae CLIs: bad input, damaged files, a full disk and a diverged training are one-line errors (exit 2) that
leave no partial file; nothing is overwritten without being asked (issue #19, items 7 and 8)."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
import torch

from pipeline.toyworld.synthetic import write_diffveri
from tests.reid.layouts import make_veri
from tests.vehiclemae.helpers import toy_config
from vehiclemae.cli import main
from vehiclemae.engine import run_pretraining

REPO = Path(__file__).resolve().parents[2]
TOY = str(REPO / "configs" / "vehiclemae" / "toy.yaml")


@pytest.fixture(autouse=True)
def _small_threads_and_fresh_accelerate():
    torch.set_num_threads(1)
    yield
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 1-epoch toy pre-training run folder."""
    base = tmp_path_factory.mktemp("cli-errors")
    root = write_diffveri(base / "data", identities=4, size=32)
    cfg = toy_config(root, base / "run", epochs=1, **{"model.img_size": 32})
    run_pretraining(cfg)
    return base / "run"


def _one_line_error(capsys, code: int, *fragments: str) -> str:
    err = capsys.readouterr().err
    # Progress bars (tqdm, carriage returns) may precede it; the error itself is one line.
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip()]
    errors = [line for line in lines if ": error: " in line]
    assert code == 2 and len(errors) == 1 and lines[-1] == errors[0] and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in errors[0], err
    return errors[0]


@pytest.mark.parametrize(
    "setting,expected",
    [("optim.blr=[1,2]", "optim.blr: expected a number, got [1, 2]"), ("epochs=[1]", "epochs: expected an integer")],
)
def test_a_list_where_a_number_belongs_is_refused(setting: str, expected: str, tmp_path: Path, capsys) -> None:
    code = main(["train", "--config", TOY, "--set", setting, "--set", f"output_dir={tmp_path / 'run'}"])
    _one_line_error(capsys, code, expected)
    assert not (tmp_path / "run").exists()


def test_damaged_encoder_files_are_one_line_errors(run: Path, tmp_path: Path, capsys) -> None:
    assert main(["export", "--checkpoint", str(run), "--out", str(tmp_path / "enc.safetensors")]) == 0
    good = (tmp_path / "enc.safetensors").read_bytes()
    veri = make_veri(tmp_path / "VeRi")
    for name, data in (("garbage", os.urandom(200)), ("truncated", good[: len(good) // 2]), ("empty", b"")):
        bad = tmp_path / f"{name}.safetensors"
        bad.write_bytes(data)
        code = main(["probe", "--checkpoint", str(bad), "--root", str(veri), "--protocols", "knn_cls"])
        _one_line_error(capsys, code, str(bad), "re-export it")
        code = main(["eval", "--checkpoint", str(bad), "--dataset", "veri776", "--root", str(veri)])
        _one_line_error(capsys, code, str(bad))
    garbage_pt = tmp_path / "garbage.pt"
    garbage_pt.write_bytes(os.urandom(300))
    from vehiclemae.models.init import read_state_dict

    with pytest.raises(ValueError, match="garbage.pt") as info:
        read_state_dict(garbage_pt)
    assert "\n" not in str(info.value)


def test_non_finite_loss_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    root = write_diffveri(tmp_path / "data", identities=4, size=32)
    argv = ["train", "--config", TOY, "--set", f"data.root={root}", "--set", f"output_dir={tmp_path / 'run'}"]
    argv += ["--set", "epochs=1", "--set", "optim.batch_size=8", "--set", "model.img_size=32"]
    code = main([*argv, "--set", "method.view_loss_weight=.nan"])
    _one_line_error(capsys, code, "non-finite loss at epoch 0", "optim.blr")


def test_export_never_overwrites_without_force(run: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "notes.txt"
    out.write_text("someone's notes")
    code = main(["export", "--checkpoint", str(run), "--out", str(out)])
    _one_line_error(capsys, code, "already exists", "--force")
    assert out.read_text() == "someone's notes"
    assert main(["export", "--checkpoint", str(run), "--out", str(out), "--force"]) == 0
    assert out.read_bytes() != b"someone's notes"


def test_disk_full_is_a_one_line_error_and_leaves_no_partial_file(run: Path, tmp_path: Path, capsys, monkeypatch):
    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)  # the write reached the page cache; the disk refuses it at fsync
    out = tmp_path / "enc.safetensors"
    code = main(["export", "--checkpoint", str(run), "--out", str(out)])
    _one_line_error(capsys, code, "No space left on device")
    assert list(tmp_path.iterdir()) == []  # neither the file nor a .tmp


def test_a_new_run_never_writes_into_an_earlier_runs_folder(run: Path, tmp_path: Path, capsys) -> None:
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "checkpoints" / "checkpoint-last.pt").unlink()  # lost, e.g. deleted by hand
    before = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    root = json.loads(json.dumps(str(run.parent / "data")))
    argv = ["train", "--config", TOY, "--set", f"data.root={root}", "--set", f"output_dir={copy}"]
    argv += ["--set", "epochs=1", "--set", "optim.batch_size=8", "--set", "model.img_size=32"]
    _one_line_error(capsys, main([*argv, "--resume"]), "checkpoint-0001.pt", "copy it to checkpoint-last.pt")
    _one_line_error(capsys, main(argv), "holds checkpoints of an earlier run", "checkpoint-0001.pt")
    assert {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()} == before  # nothing touched


def test_a_resumed_runs_log_reads_like_a_straight_one(tmp_path: Path) -> None:
    root = write_diffveri(tmp_path / "data", identities=4, size=32)
    cfg = toy_config(root, tmp_path / "run", epochs=2, **{"model.img_size": 32})
    run_pretraining(cfg, stop_after_epoch=1)
    log = tmp_path / "run" / "log.jsonl"
    # An interrupted run wrote records after its last checkpoint; resuming replays those steps.
    with open(log, "a") as handle:
        handle.write(json.dumps({"epoch": 1, "step": 10_000, "loss": 1.0}) + "\n")
    run_pretraining(cfg, resume=True)
    steps = [json.loads(line)["step"] for line in log.read_text().splitlines() if '"lr"' in line]
    assert steps == sorted(steps) and len(steps) == len(set(steps)) and 10_000 not in steps
