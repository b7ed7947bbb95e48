"""Collapse monitor: effective rank of known matrices, the warning on a collapsed encoder, the epoch records of a
tiny run, and training unchanged (resume exact, monitor on == off)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from vehiclemae.engine import run_pretraining
from vehiclemae.engine.checkpoint import load_checkpoint
from vehiclemae.models import create_encoder
from vehiclemae.monitor import CollapseMonitor, effective_rank, encoder_stats, select_probe

from .helpers import toy_config


def test_effective_rank_of_known_matrices() -> None:
    gen = torch.Generator().manual_seed(0)
    u, v = torch.randn(50, 1, generator=gen), torch.randn(1, 20, generator=gen)
    assert effective_rank(u @ v + 3.0) == pytest.approx(1.0, abs=1e-9)  # rank 1 (after centring), any offset
    k = 7
    eye = torch.eye(k, 16)
    assert effective_rank(torch.cat([eye, -eye])) == pytest.approx(k, abs=1e-9)  # k equal singular values
    gauss = effective_rank(torch.randn(4000, 16, generator=gen))
    assert 0.98 * 16 < gauss <= 16  # isotropic Gaussian: close to the dimension
    assert effective_rank(torch.full((30, 8), 2.5)) == 0.0  # constant rows: nothing left after centring
    assert effective_rank(torch.randn(5, 64, generator=gen)) <= 4 + 1e-9  # at most N - 1 after centring


def test_probe_selection_is_seeded_and_leaves_global_rng_alone() -> None:
    state = (torch.get_rng_state(), np.random.get_state()[1].copy())
    a = select_probe(100, 10, seed=3)
    assert np.array_equal(a, select_probe(100, 10, seed=3)) and len(set(a.tolist())) == 10
    assert not np.array_equal(a, select_probe(100, 10, seed=4))
    assert np.array_equal(select_probe(5, 10, seed=0), np.arange(5))
    assert torch.equal(state[0], torch.get_rng_state()) and np.array_equal(state[1], np.random.get_state()[1])


def test_warning_fires_on_a_collapsed_encoder(caplog) -> None:
    torch.manual_seed(0)
    images = torch.randn(24, 3, 32, 32)
    healthy = create_encoder("vehiclemae_vit_toy_patch8", img_size=32).train()
    monitor = CollapseMonitor(images)
    with caplog.at_level(logging.WARNING, logger="vehiclemae.monitor"):
        record = monitor.measure({"rgb": healthy}, epoch=0)
    assert not caplog.records and record["probe_rgb_collapse"] is False
    assert record["probe_rgb_effective_rank"] > 2 and record["probe_rgb_token_std"] > 0.1
    assert healthy.training  # the encoder's mode is restored

    collapsed = create_encoder("vehiclemae_vit_toy_patch8", img_size=32)
    with torch.no_grad():
        collapsed.norm.weight.zero_()  # final norm outputs its bias: the same tokens for every image
        collapsed.norm.bias.normal_()
    stats = encoder_stats(collapsed, images)
    assert stats["token_std"] == 0.0 and stats["pooled_std"] == 0.0 and stats["effective_rank"] == 0.0
    with caplog.at_level(logging.WARNING, logger="vehiclemae.monitor"):
        record = monitor.measure({"rgb": healthy, "view": collapsed}, epoch=3)
    assert record["probe_view_collapse"] is True and record["probe_rgb_collapse"] is False
    assert "epoch 3: the view encoder looks collapsed" in caplog.text and "effective rank 0 < 2" in caplog.text

    # the relative rule: token_std far below the first probed epoch's value
    caplog.clear()
    shrunk = CollapseMonitor(images, min_effective_rank=0.0)
    shrunk.load_state_dict({"reference": {"rgb": 100.0 * encoder_stats(healthy, images)["token_std"]}})
    with caplog.at_level(logging.WARNING, logger="vehiclemae.monitor"):
        assert shrunk.measure({"rgb": healthy}, epoch=5)["probe_rgb_collapse"] is True
    assert "x its first-epoch value" in caplog.text


def _epoch_records(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return [r for r in rows if "seconds" in r]


def test_records_in_the_log_and_training_unchanged(diffveri_root: Path, tmp_path: Path) -> None:
    """Monitor on: probe records per epoch in log.jsonl, resume exact (records too); weights equal to monitor off."""
    on = load_checkpoint(run_pretraining(toy_config(diffveri_root, tmp_path / "on", epochs=2)))
    records = _epoch_records(tmp_path / "on")
    assert [r["epoch"] for r in records] == [0, 1]
    for branch in ("rgb", "view"):
        for stat in ("token_std", "pooled_std", "effective_rank"):
            assert all(r[f"probe_{branch}_{stat}"] > 0 for r in records), (branch, stat)
        assert all(r[f"probe_{branch}_collapse"] is False for r in records)
    assert all(r["probe_seconds"] > 0 for r in records)
    assert on["monitor"]["reference"]["rgb"] == records[0]["probe_rgb_token_std"]

    off = load_checkpoint(
        run_pretraining(toy_config(diffveri_root, tmp_path / "off", epochs=2, **{"monitor.probe_size": 0}))
    )
    assert off["monitor"] is None and not any("probe_seconds" in r for r in _epoch_records(tmp_path / "off"))
    for key, value in on["model"].items():
        assert torch.equal(off["model"][key], value), key

    run_pretraining(toy_config(diffveri_root, tmp_path / "re", epochs=2), stop_after_epoch=1)
    resumed = load_checkpoint(run_pretraining(toy_config(diffveri_root, tmp_path / "re", epochs=2), resume=True))
    for key, value in on["model"].items():
        assert torch.equal(resumed["model"][key], value), key
    assert resumed["monitor"] == on["monitor"]
    strip = lambda r: {k: v for k, v in r.items() if "seconds" not in k}  # noqa: E731
    assert [strip(r) for r in _epoch_records(tmp_path / "re")] == [strip(r) for r in records]


def test_mae_mode_probes_the_rgb_encoder_only(diffveri_root: Path, tmp_path: Path) -> None:
    run_pretraining(
        toy_config(diffveri_root, tmp_path / "mae", epochs=1, **{"method.mode": "mae", "monitor.probe_size": 8})
    )
    (record,) = _epoch_records(tmp_path / "mae")
    assert "probe_rgb_effective_rank" in record and not any(k.startswith("probe_view") for k in record)
    assert record["probe_rgb_effective_rank"] <= 7 + 1e-9  # 8 probe images
    with pytest.raises(ValueError, match="monitor.probe_size must be 0"):
        run_pretraining(toy_config(diffveri_root, tmp_path / "bad", **{"monitor.probe_size": 1}))
