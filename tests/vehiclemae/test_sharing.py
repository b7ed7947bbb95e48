"""Shareable models: the encoder's timm folder (plain timm, no project) and the fine-tuned Re-ID export."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import timm
import torch

from vehiclemae.models import create_encoder
from vehiclemae.timm_folder import save_timm_folder, timm_architecture

PLAIN_TIMM = """
import importlib.util, sys
sys.path.append(sys.argv[1])  # site-packages only: no .pth files, so no editable install of this project
assert importlib.util.find_spec("vehiclemae") is None and importlib.util.find_spec("data_manifests") is None
import numpy as np, timm, torch
model = timm.create_model("local-dir:" + sys.argv[2], pretrained=True).eval()
cfg = timm.data.resolve_data_config({}, model=model)
x = torch.from_numpy(np.load(sys.argv[3]))
with torch.no_grad():
    np.save(sys.argv[4], model(x).numpy())
print(type(model).__name__, model.num_classes, cfg["input_size"], cfg["mean"])
"""


def test_timm_folder_loads_in_plain_timm_without_the_project(tmp_path: Path) -> None:
    torch.manual_seed(0)
    encoder = create_encoder("vehiclemae_vit_toy_patch8", img_size=32).eval()
    folder = save_timm_folder(encoder, tmp_path / "enc_timm", model_name="vehiclemae_vit_toy_patch8", img_size=32)
    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == "vit_base_patch16_224" and config["model_args"]["embed_dim"] == 96
    assert (folder / "model.safetensors").is_file()
    x = torch.randn(2, 3, 32, 32)
    np.save(tmp_path / "x.npy", x.numpy())
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", PLAIN_TIMM, sysconfig.get_paths()["purelib"], str(folder)]
        + [str(tmp_path / "x.npy"), str(tmp_path / "y.npy")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[:3] == ["VisionTransformer", "0", "(3,"]  # a feature extractor at our size
    assert "[0.485, 0.456, 0.406]" in proc.stdout  # our normalisation, not the builder's default
    with torch.no_grad():
        expected = encoder(x).numpy()
    assert np.array_equal(np.load(tmp_path / "y.npy"), expected)


def test_timm_folder_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    encoder = create_encoder("vehiclemae_vit_toy_patch8", img_size=32)
    (tmp_path / "enc_timm").mkdir()
    (tmp_path / "enc_timm" / "keep.txt").write_text("x")
    with pytest.raises(ValueError, match="--force"):
        save_timm_folder(encoder, tmp_path / "enc_timm", model_name="vehiclemae_vit_toy_patch8", img_size=32)
    assert (tmp_path / "enc_timm" / "keep.txt").is_file()
    save_timm_folder(encoder, tmp_path / "enc_timm", model_name="vehiclemae_vit_toy_patch8", img_size=32, force=True)
    assert sorted(p.name for p in (tmp_path / "enc_timm").iterdir()) == ["config.json", "model.safetensors"]
    assert [p.name for p in tmp_path.iterdir()] == ["enc_timm"]  # no temporary folder left


@pytest.mark.parametrize("name", ["vehiclemae_vit_tiny_patch16", "vehiclemae_vit_base_patch16_clip"])
def test_plain_timm_builder_is_the_same_network(name: str) -> None:
    # Same modules and the same outputs with the same weights (depth 1 keeps the test small).
    architecture, args = timm_architecture(name)
    ours = timm.create_model(name, num_classes=0, img_size=32, depth=1).eval()
    theirs = timm.create_model(architecture, **{**args, "img_size": 32, "num_classes": 0, "depth": 1}).eval()
    theirs.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))


def test_reid_export_is_pickle_free_and_evaluates_like_the_checkpoint(tmp_path: Path, capsys) -> None:
    from safetensors.torch import load_file

    from vehiclemae.cli import main
    from vehiclemae.reid import finetune as ft
    from vehiclemae.reid.checkpoints import load_model, save_reid_checkpoint

    torch.manual_seed(0)
    backbone, spec = ft.build_backbone("scratch", "vehiclemae_vit_toy_patch8", 32)
    model = ft.ReIDModel(backbone, 5, spec)
    model.bottleneck.running_mean.uniform_(-1, 1)  # non-trivial BNNeck statistics must travel too
    ck = save_reid_checkpoint(tmp_path / "best.pth", model, epoch=3, metrics={"mAP": 12.5})
    out = tmp_path / "reid"
    assert main(["export-reid", "--checkpoint", str(ck), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    config = json.loads((out / "config.json").read_text())
    assert config["num_classes"] == 5 and config["epoch"] == 3 and config["metrics"] == {"mAP": 12.5}
    assert config["timm"]["architecture"] == "vit_base_patch16_224" and config["img_size"] == 32
    assert "bottleneck.running_mean" in load_file(str(out / "model.safetensors"))
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected = load_model(ck)[0](x)
        exported, size = load_model(out)
        assert size == 32 and torch.equal(exported(x), expected)
    # the plain-timm recipe rebuilds the backbone; BNNeck applied by hand gives the same feature
    timm_backbone = timm.create_model(config["timm"]["architecture"], **config["timm"]["model_args"]).eval()
    state = load_file(str(out / "model.safetensors"))
    timm_backbone.load_state_dict({k[9:]: v for k, v in state.items() if k.startswith("backbone.")})
    bn = torch.nn.BatchNorm1d(timm_backbone.num_features).eval()
    bn.load_state_dict({k[11:]: v for k, v in state.items() if k.startswith("bottleneck.")})
    with torch.no_grad():
        assert torch.allclose(bn(timm_backbone(x)), expected, atol=1e-6)
    # refusals: an existing folder without --force, a file that is not a Re-ID checkpoint
    assert main(["export-reid", "--checkpoint", str(ck), "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    torch.save({"format": "other"}, tmp_path / "x.pth")
    assert main(["export-reid", "--checkpoint", str(tmp_path / "x.pth"), "--out", str(tmp_path / "x")]) == 2
    assert "not a Re-ID checkpoint" in capsys.readouterr().err and not (tmp_path / "x").exists()
