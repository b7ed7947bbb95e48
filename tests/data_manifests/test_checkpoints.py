"""The shared checkpoint convention: atomic write and weights-only read with a format tag, automatic resume from
``checkpoints/checkpoint-last.pt``, ``--no-resume``, the config check, old names and the deprecated ``--resume``."""

from __future__ import annotations

import argparse
import random

import numpy as np
import pytest
import torch

from data_manifests import checkpoints as ck


def test_save_and_load_round_trip_with_format_and_rng(tmp_path) -> None:
    path = ck.last_path(tmp_path)
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    ck.save_checkpoint(path, {"step": 3, "w": torch.ones(2)}, format="test-v1")
    expected = (random.random(), np.random.rand(2), torch.rand(2))
    state = ck.load_checkpoint(path, format="test-v1")
    assert state["format"] == "test-v1" and state["step"] == 3 and torch.equal(state["w"], torch.ones(2))
    assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == []  # plain values only
    ck.set_rng_states(state["rng"])
    assert random.random() == expected[0] and np.array_equal(np.random.rand(2), expected[1])
    assert torch.equal(torch.rand(2), expected[2])
    with pytest.raises(ValueError, match="is not a Re-ID checkpoint .*expected format other-v1"):
        ck.load_checkpoint(path, format="other-v1", what="Re-ID checkpoint")
    assert list(path.parent.iterdir()) == [path]  # no temporary file left


def test_find_last_start_over_and_old_names(tmp_path) -> None:
    assert ck.find_last(tmp_path) is None
    (tmp_path / "last.pth").write_bytes(b"old last")
    (tmp_path / "best.pth").write_bytes(b"old best")
    with pytest.warns(FutureWarning, match="old checkpoint name"):
        found = ck.find_last(tmp_path, legacy={"last.pth": ck.LAST, "best.pth": ck.BEST})
    assert found == ck.last_path(tmp_path) and found.read_bytes() == b"old last"
    assert ck.best_path(tmp_path).read_bytes() == b"old best" and not (tmp_path / "last.pth").exists()
    ck.checkpoint_dir(tmp_path).joinpath("checkpoint-0001.pt").write_bytes(b"numbered")
    (tmp_path / "notes.txt").write_text("kept")
    ck.start_over(tmp_path)
    assert list(ck.checkpoint_dir(tmp_path).iterdir()) == [] and (tmp_path / "notes.txt").is_file()


def test_config_differences_name_the_keys_that_change_training() -> None:
    saved = {"seed": 0, "output_dir": "a", "optim": {"lr": 1e-3, "betas": (0.9, 0.95)}, "old_key": 1}
    same = {"seed": 0, "output_dir": "b", "optim": {"lr": 1e-3, "betas": [0.9, 0.95]}, "new_key": 2}
    assert ck.config_differences(saved, same, ignore=("output_dir",)) == []  # keys of one side only: not compared
    other = {**same, "optim": {"lr": 2e-3, "betas": [0.9, 0.99]}}
    assert ck.config_differences(saved, other, ignore=("output_dir",)) == ["optim.betas", "optim.lr"]
    assert ck.config_differences(saved, other, ignore=("optim",)) == ["output_dir"]
    with pytest.raises(ValueError, match=r"optim\.lr: 0\.001 in the checkpoint, 0\.002 now.*--no-resume"):
        ck.check_config("ck.pt", saved, other, ignore=("output_dir",))


def test_resume_flags(tmp_path) -> None:
    parser = argparse.ArgumentParser()
    ck.add_resume_flags(parser)
    assert parser.parse_args([]).no_resume is False and parser.parse_args(["--no-resume"]).no_resume is True
    with pytest.warns(FutureWarning, match="--resume is deprecated"):
        assert parser.parse_args(["--resume"]).no_resume is False
    assert ck.run_name(tmp_path / "run" / "checkpoints" / ck.BEST) == "run"
    assert ck.run_name(tmp_path / "run" / "best.pth") == "run"
