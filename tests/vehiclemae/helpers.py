"""Shared builders of the pre-training tests (and the security tests that run pre-training)."""

from __future__ import annotations

from pathlib import Path


def toy_config(root: Path, out: Path, **overrides):
    """The toy profile shrunk for tests (tiny decoder, small batches, no logging noise)."""
    from vehiclemae.config import load_config
    from vehiclemae.engine import PretrainConfig

    sets = {
        "data.root": str(root),
        "output_dir": str(out),
        "epochs": 2,
        "optim.batch_size": 8,
        "optim.warmup_epochs": 1,
        "log_every": 1,
        "checkpoint_every": 1,
        **overrides,
    }
    cfg_path = Path(__file__).resolve().parents[2] / "configs" / "vehiclemae" / "toy.yaml"
    return load_config(PretrainConfig, cfg_path, [f"{k}={v}" for k, v in sets.items()])
