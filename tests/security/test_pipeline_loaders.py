"""The pipeline loads checkpoints without running code from them.

Entry points: the filter's detector weights (``filter.weights`` → ``UltralyticsDetector`` / ``load_yolo``, also used
by ``diffveri toy detector``) and ``diffveri segment finetune``'s resume from
``OUT_DIR/checkpoints/checkpoint-last.pt``. Crafted files are refused with one line naming the file, the marker their
payload would create never appears, and real checkpoints of each kind still load.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from data_manifests import VIEW_CLASSES_PVEN, sha256_file
from pipeline.filter import UltralyticsDetector, run_stage
from pipeline.filter.detector import load_yolo
from pipeline.segment.finetune import finetune
from tests.filter.synth import make_generations
from tests.segment.helpers import annotated_root, tiny_spec

from .payloads import HOWS, Payload, write_damaged, write_payload, write_plain_pickle_payload


@pytest.fixture(scope="module")
def yolo_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised YOLO11n saved by ultralytics (what `YOLO.save` and training write)."""
    from ultralytics import YOLO

    path = tmp_path_factory.mktemp("yolo") / "rand.pt"
    YOLO("yolo11n.yaml").save(str(path))
    return path


def _crafted_yolo(kind: str, weights: Path, path: Path, marker: Path, how: str) -> Path:
    """A payload alone, inside a real YOLO checkpoint (an extra key), or hidden in the model as a layer attribute."""
    if kind == "bare":
        return write_payload(path, marker, how)
    if kind == "plain-pickle":
        return write_plain_pickle_payload(path, marker)
    path.parent.mkdir(parents=True, exist_ok=True)
    ckpt = torch.load(weights, map_location="cpu", weights_only=False)  # our own file, written just above
    if kind == "extra-key":
        ckpt["extra"] = Payload(marker, how)
    else:
        ckpt["model"].model[0].hook = Payload(marker, how)
    torch.save(ckpt, path)
    return path


# ------------------------------------------------------------------------------------------------ detector weights
@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("how", HOWS)
@pytest.mark.parametrize("kind", ["bare", "extra-key", "in-model", "plain-pickle"])
def test_detector_refuses_crafted_weights_and_runs_nothing(yolo_weights, tmp_path, kind, how) -> None:
    marker = tmp_path / "ran"
    crafted = _crafted_yolo(kind, yolo_weights, tmp_path / "evil.pt", marker, how)
    with pytest.raises(ValueError) as exc:
        UltralyticsDetector(crafted)
    message = str(exc.value)
    assert str(crafted) in message and "\n" not in message
    if kind == "plain-pickle":
        assert "not a readable YOLO checkpoint" in message  # not a torch.save archive: never unpickled
    else:
        assert "not a safe YOLO checkpoint" in message and "nothing in it was run" in message
    assert not marker.exists()


def test_filter_stage_refuses_crafted_weights(yolo_weights, tmp_path) -> None:
    """`diffveri run filter` with `filter.weights` pointing at a crafted file: a ValueError, the payload never ran."""
    make_generations(tmp_path, n_identities=1, per_identity=2, size=64)
    marker = tmp_path / "ran"
    _crafted_yolo("extra-key", yolo_weights, tmp_path / "models" / "evil.pt", marker, "open")
    with pytest.raises(ValueError, match="not a safe YOLO checkpoint"):
        run_stage({"filter": {"weights": "models/evil.pt", "imgsz": 64}}, tmp_path, None)
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["empty", "truncated", "garbage"])
def test_damaged_detector_weights_get_a_one_line_error(yolo_weights, tmp_path, kind) -> None:
    bad = write_damaged(tmp_path / "bad.pt", kind, yolo_weights)
    with pytest.raises(ValueError, match="not a readable YOLO checkpoint") as exc:
        UltralyticsDetector(bad)
    assert str(bad) in str(exc.value) and "\n" not in str(exc.value)


def test_real_yolo_weights_still_load_and_predict(yolo_weights) -> None:
    det = UltralyticsDetector(yolo_weights, imgsz=64, conf=0.001)
    assert det.ref == f"ultralytics:rand.pt@{sha256_file(yolo_weights)[:12]}"
    assert len(det.names) == 80
    boxes = det.predict([np.zeros((64, 64, 3), np.uint8)])
    assert len(boxes) == 1 and boxes[0].shape[1] == 6


def test_only_bundled_model_yamls_are_accepted(tmp_path, monkeypatch) -> None:
    """A model yaml is code to ultralytics (its `activation` is eval'd): only bundled definitions load."""
    from ultralytics.utils import ROOT

    model, digest = load_yolo("yolo11n.yaml")
    assert digest == "random" and len(model.names) == 80
    marker = tmp_path / "ran"
    bundled = (ROOT / "cfg" / "models" / "11" / "yolo11.yaml").read_text()
    evil = f"activation: __import__('pathlib').Path({str(marker)!r}).touch() or __import__('torch').nn.SiLU()\n"
    (tmp_path / "evil.yaml").write_text(evil + bundled)
    with pytest.raises(ValueError, match="bundled with ultralytics"):
        UltralyticsDetector(tmp_path / "evil.yaml")
    # the same definition planted where ultralytics looks first (the working directory) shadows no bundled name
    (tmp_path / "yolo11.yaml").write_text(evil + bundled)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="would read .*yolo11.yaml instead of its bundled definition"):
        UltralyticsDetector("yolo11n.yaml")
    assert not marker.exists()


# ------------------------------------------------------------------------------------------- segment fine-tuning
def _finetune_kwargs(root: Path, out: Path) -> dict:
    return dict(
        root=root, view_classes=VIEW_CLASSES_PVEN, model=tiny_spec(), checkpoint=out / "sam.pt", out_dir=out,
        batch_size=2, eval_every=1, checkpoint_every=1, val_fraction=0.0,
    )  # fmt: skip


@pytest.fixture(scope="module")
def annotated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("segment")
    annotated_root(root, identities=2, images=2)
    return root


@pytest.mark.parametrize("how", HOWS)
def test_segment_finetune_resume_refuses_a_crafted_last_pt(annotated, tmp_path, how) -> None:
    out = tmp_path / "run"
    marker = tmp_path / "ran"
    crafted = write_payload(out / "checkpoints" / "checkpoint-last.pt", marker, how, around={"step": 1})
    with pytest.raises(ValueError) as exc:
        finetune(steps=2, **_finetune_kwargs(annotated, out))
    message = str(exc.value)
    assert str(crafted) in message and "not a safe checkpoint" in message and "--no-resume" in message
    assert not marker.exists()


def test_segment_finetune_resume_reports_a_damaged_last_pt(annotated, tmp_path) -> None:
    good = tmp_path / "good.pt"
    torch.save({"model": {"w": torch.randn(64, 64)}}, good)
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    write_damaged(out / "checkpoints" / "checkpoint-last.pt", "truncated", good)
    with pytest.raises(ValueError, match="not a readable checkpoint.*--no-resume"):
        finetune(steps=2, **_finetune_kwargs(annotated, out))


def test_segment_finetune_checkpoint_round_trip(annotated, tmp_path) -> None:
    out = tmp_path / "run"
    assert finetune(steps=1, **_finetune_kwargs(annotated, out)).steps == 1
    last = out / "checkpoints" / "checkpoint-last.pt"
    assert torch.serialization.get_unsafe_globals_in_checkpoint(last) == []
    assert finetune(steps=2, **_finetune_kwargs(annotated, out)).steps == 2  # resumed at step 1
    assert torch.load(last, map_location="cpu", weights_only=True)["step"] == 2
