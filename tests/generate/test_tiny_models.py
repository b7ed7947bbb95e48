"""The tiny Stable Diffusion pipeline's folder: atomic, and safe when parallel shards build it at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.generate import tiny_models
from pipeline.generate.tiny_models import MODEL_INDEX, save_tiny_pipeline

from .conftest import TEST_SPEC


def test_a_pipeline_put_in_place_meanwhile_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two shards both find no model and build it; the one that finishes second must not delete the folder the
    first one put in place (the first may be loading from it: the demo's dreambooth shards failed this way)."""
    out = tmp_path / "tiny-sd"
    real_build = tiny_models.build_tiny_pipeline

    def build_while_another_shard_finishes(*args, **kwargs):
        monkeypatch.setattr(tiny_models, "build_tiny_pipeline", real_build)
        save_tiny_pipeline(out, spec=TEST_SPEC, seed=0)  # the other shard's whole build lands first
        (out / "first.marker").touch()
        return real_build(*args, **kwargs)

    monkeypatch.setattr(tiny_models, "build_tiny_pipeline", build_while_another_shard_finishes)
    assert save_tiny_pipeline(out, spec=TEST_SPEC, seed=0) == out
    assert (out / "first.marker").is_file() and (out / MODEL_INDEX).is_file()  # the first folder stayed
    assert [p.name for p in tmp_path.iterdir()] == ["tiny-sd"]  # the second build's temporary folder is gone


def test_overwrite_replaces_and_a_non_pipeline_folder_is_replaced(tmp_path: Path) -> None:
    out = tmp_path / "tiny-sd"
    out.mkdir()
    (out / "leftover.txt").write_text("not a pipeline")
    save_tiny_pipeline(out, spec=TEST_SPEC, seed=0)
    assert (out / MODEL_INDEX).is_file() and not (out / "leftover.txt").exists()
    (out / "first.marker").touch()
    save_tiny_pipeline(out, spec=TEST_SPEC, seed=0)
    assert (out / "first.marker").is_file()  # kept
    save_tiny_pipeline(out, spec=TEST_SPEC, seed=0, overwrite=True)
    assert not (out / "first.marker").exists() and (out / MODEL_INDEX).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny-sd"]
