from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from vehiclemae.config import load_config, save_run_config


@dataclass
class Optim:
    lr: float = 1e-3
    betas: tuple = (0.9, 0.95)


@dataclass
class Run:
    epochs: int = 1
    name: str = "x"
    optim: Optim = field(default_factory=Optim)


def test_layers_defaults_yaml_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 3\noptim:\n  lr: 2\n")
    cfg = load_config(Run, path, ["optim.betas=[0.5, 0.6]", "name=run1"])
    assert cfg.epochs == 3 and cfg.name == "run1"
    assert cfg.optim.lr == 2.0 and isinstance(cfg.optim.lr, float) and cfg.optim.betas == (0.5, 0.6)


def test_unknown_keys_and_bad_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("epoch: 3\n")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['epoch'\] \(did you mean 'epochs'\?\); valid keys"):
        load_config(Run, path)
    with pytest.raises(ValueError, match=r"unknown section 'optm' \(did you mean 'optim'\?\)"):
        load_config(Run, None, ["optm.lr=1"])
    with pytest.raises(ValueError, match=r"optim: unknown key\(s\) \['lrr'\] \(did you mean 'lr'\?\)"):
        load_config(Run, None, ["optim.lrr=1"])
    with pytest.raises(ValueError, match="key=value"):
        load_config(Run, None, ["epochs"])
    with pytest.raises(FileNotFoundError, match="configs/vehiclemae"):
        load_config(Run, tmp_path / "missing.yaml")


def test_saved_config_has_git_sha(tmp_path: Path) -> None:
    saved = yaml.safe_load(save_run_config(Run(epochs=5), tmp_path).read_text())
    assert saved["epochs"] == 5 and saved["optim"]["lr"] == 1e-3 and saved["git_sha"]


@pytest.mark.parametrize(
    "override, message",
    [
        ("methd.mode=mae", r"unknown section 'methd' \(did you mean 'method'\?\)"),
        ("optim.bl=1e-3", r"optim: unknown key\(s\) \['bl'\] \(did you mean 'blr'\?\)"),
    ],
)
def test_the_pretraining_profile_suggests_the_nearest_name(override: str, message: str) -> None:
    from vehiclemae.engine.config import PretrainConfig

    with pytest.raises(ValueError, match=message):
        load_config(PretrainConfig, "toy", [override])
    assert load_config(PretrainConfig, "toy", ["optim.blr=1e-4"]).optim.blr == 1e-4
