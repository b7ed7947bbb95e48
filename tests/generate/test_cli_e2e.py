"""The toy profile end to end through the CLI: toy sd, run dreambooth, run synthesize, validate (slow)."""

from __future__ import annotations

from pathlib import Path

import pytest

import data_manifests as dm
from pipeline.cli import main as diffveri_main

from .helpers import make_toy_subjects

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "pipeline" / "toy.yaml"


def test_build_toy_model_cli(tmp_path: Path) -> None:
    from diffusers import StableDiffusionPipeline

    assert diffveri_main(["toy", "sd", "--root", str(tmp_path)]) == 0
    pipe = StableDiffusionPipeline.from_pretrained(tmp_path / "models" / "tiny-sd", local_files_only=True)
    assert pipe.tokenizer("a photo of zeqa sedan").input_ids[0] == pipe.tokenizer.bos_token_id
    assert pipe.text_encoder.config.vocab_size == len(pipe.tokenizer)


@pytest.mark.slow
def test_toy_profile_end_to_end(tmp_path: Path, tiny_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    make_toy_subjects(root, n=2, size=32)
    small = [
        f"models.base={tiny_model}",
        "dreambooth.resolution=32",
        "dreambooth.steps=2",
        "dreambooth.num_class_images=2",
        "synthesize.width=32",
        "synthesize.height=32",
        "synthesize.steps=2",
    ]
    args = ["--config", str(CONFIG), "--root", str(root)] + [a for s in small for a in ("--set", s)]
    assert diffveri_main(["run", "dreambooth", *args]) == 0
    assert diffveri_main(["run", "synthesize", *args]) == 0
    out = capsys.readouterr().out
    assert "dreambooth: processed=2" in out and "synthesize: processed=58" in out  # 2 x (9 x 3 + 2)
    refs = {r["model_ref"].split(":")[0] for r in dm.read_rows(root, "generations")}
    assert refs == {"toyworld", "diffusion"}
    assert diffveri_main(["manifests", "validate", "--root", str(root)]) == 0
    # Everything is done: a second run skips all of it.
    assert diffveri_main(["run", "synthesize", *args]) == 0
    assert "processed=0, skipped=58" in capsys.readouterr().out
