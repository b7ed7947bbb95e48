"""The ``vehiclemae`` CLI end to end on a tiny table: train, resume, export, viz-recon."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from vehiclemae.cli import main
from vehiclemae.models import load_encoder, read_metadata


def test_train_export_viz(diffveri_root: Path, tmp_path: Path, capsys) -> None:
    config = Path(__file__).resolve().parents[2] / "configs" / "vehiclemae" / "toy.yaml"
    run = tmp_path / "run"
    sets = [f"data.root={diffveri_root}", f"output_dir={run}", "epochs=2", "optim.batch_size=8", "model.img_size=32"]
    args = ["train", "--config", str(config), *[x for s in sets for x in ("--set", s)]]
    assert main([*args, "--stop-after-epoch", "1"]) == 0
    with pytest.warns(FutureWarning, match="--resume is deprecated"):
        assert main([*args, "--resume"]) == 0  # a rerun resumes; --resume is a deprecated no-op
    ck = run / "checkpoints" / "checkpoint-last.pt"
    assert (run / "config.yaml").is_file() and ck.is_file()

    # a run folder stands for its last checkpoint
    assert main(["export", "--checkpoint", str(run), "--out", str(tmp_path / "enc.safetensors")]) == 0
    meta = read_metadata(tmp_path / "enc.safetensors")
    assert meta["source"] == "vehiclemae" and meta["img_size"] == 32
    # ... and the timm folder beside it, with the same weights (plain-timm loading: test_sharing.py)
    import timm

    plain = timm.create_model(f"local-dir:{tmp_path / 'enc_timm'}", pretrained=True)
    assert torch.equal(
        plain.blocks[0].attn.qkv.weight, load_encoder(tmp_path / "enc.safetensors").blocks[0].attn.qkv.weight
    )
    encoder = load_encoder(tmp_path / "enc.safetensors")
    state = torch.load(ck, map_location="cpu", weights_only=False)["model"]
    assert torch.equal(encoder.blocks[0].attn.qkv.weight, state["rgb.encoder.blocks.0.attn.qkv.weight"])
    assert main(["export", "--checkpoint", str(ck), "--out", str(tmp_path / "v.safetensors"), "--branch", "view"]) == 0
    assert torch.equal(
        load_encoder(tmp_path / "v.safetensors").blocks[0].attn.qkv.weight,
        state["view.encoder.blocks.0.attn.qkv.weight"],
    )

    assert main(["viz-recon", "--checkpoint", str(ck), "-n", "3"]) == 0
    png = run / "recon-epoch0002.png"
    with Image.open(png) as img:
        assert img.format == "PNG" and img.width > img.height

    # errors are reported with exit code 2 and a message naming the fix
    changed = [*sets, "optim.blr=1e-3"]
    assert main(["train", "--config", str(config), *[x for s in changed for x in ("--set", s)]]) == 2
    assert "optim.blr" in (err := capsys.readouterr().err) and "--no-resume" in err
    assert main(["train", "--config", str(tmp_path / "nope.yaml")]) == 2
