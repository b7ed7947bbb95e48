"""Train the toy profile's detector: YOLO11n from ``yolo11n.yaml`` on the toy world's ``detection/`` dataset.

Ultralytics' own training API runs offline on the CPU (no pretrained download, no AMP check, no plots). The
weights land in ``ROOT/models/toy-yolo.pt`` and the class names are those of the dataset's ``data.yaml`` — which is
why the toy profile sets ``filter.vehicle_classes: all``.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from data_manifests import atomic_write_bytes

log = logging.getLogger(__name__)

DEFAULT_WEIGHTS = "models/toy-yolo.pt"


@dataclass
class ToyDetectorReport:
    weights: str  # path of the saved weights
    names: dict[int, str]  # class id -> name the model was trained with
    map50: float  # box mAP@0.5 on the held-out split
    map50_95: float
    eval_split: str  # "test" if data.yaml has one, else "val"
    n_eval_images: int
    epochs: int
    imgsz: int


def _split_size(data_yaml: Path, split: str) -> int:
    data = yaml.safe_load(data_yaml.read_text())
    base = Path(data["path"]) if data.get("path") else data_yaml.parent
    if not base.is_absolute() and data.get("path"):  # a relative `path` is relative to the yaml's folder
        base = data_yaml.parent / base
    entry = data[split]
    entries = entry if isinstance(entry, list) else [entry]
    n = 0
    for e in entries:
        p = base / e
        if p.is_dir():
            n += sum(1 for f in p.rglob("*") if f.suffix.lower() in {".png", ".jpg", ".jpeg", ".bmp"})
        elif p.is_file():
            n += sum(1 for line in p.read_text().splitlines() if line.strip())
    return n


def train_toy_detector(
    *,
    root: Path,
    data_yaml: Path,
    out: Path | None = None,
    model_yaml: str = "yolo11n.yaml",
    epochs: int = 30,
    imgsz: int = 128,
    batch: int = 16,
    seed: int = 0,
    device: str = "cpu",
    optimizer: str = "AdamW",
    lr0: float = 0.002,
    mosaic: float = 1.0,
) -> ToyDetectorReport:
    """Train, evaluate on the held-out split, save weights atomically; returns the report (also saved as JSON)."""
    from .detector import load_yolo

    root = Path(root)
    data_yaml = Path(data_yaml)
    if not data_yaml.is_file():
        raise FileNotFoundError(
            f"{data_yaml} not found; write the toy world first (`diffveri toy world --root {root} ...` writes "
            f"{root}/detection/data.yaml) or pass --data"
        )
    spec = yaml.safe_load(data_yaml.read_text()) or {}
    for key in ("train", "val", "names"):
        if key not in spec:
            raise ValueError(f"{data_yaml}: missing key {key!r} (a YOLO dataset yaml needs train, val and names)")
    eval_split = "test" if spec.get("test") else "val"
    out = Path(out) if out else root / DEFAULT_WEIGHTS
    # Absolute: ultralytics puts a relative `project` under its own runs/<task>/ folder, where we would not find it.
    work = (root / "models" / "toy-yolo-train").absolute()

    # 1. Train from scratch (the yaml builds random weights offline; amp=False skips the check that downloads a model).
    # AdamW at a fixed lr converges faster from scratch on a few hundred images than ultralytics' "auto" choice.
    model, _ = load_yolo(model_yaml)  # a bundled model yaml only: ultralytics evaluates code from model yamls
    model.train(
        data=str(data_yaml),
        epochs=epochs,
        imgsz=imgsz,
        batch=batch,
        device=device,
        workers=0,
        plots=False,
        amp=False,
        seed=seed,
        deterministic=True,
        optimizer=optimizer,
        lr0=lr0,
        mosaic=mosaic,
        project=str(work),
        name="run",
        exist_ok=True,
        verbose=False,
        val=True,
    )
    best = work / "run" / "weights" / "best.pt"
    if not best.is_file():
        best = work / "run" / "weights" / "last.pt"
    # 2. Evaluate on images the model did not train on.
    trained, _ = load_yolo(best)  # weights-only checked, like the filter stage's weights
    metrics = trained.val(
        data=str(data_yaml),
        split=eval_split,
        imgsz=imgsz,
        batch=batch,
        device=device,
        workers=0,
        plots=False,
        project=str(work),
        name="eval",
        exist_ok=True,
        verbose=False,
    )
    # 3. Publish the weights atomically (a half-copied .pt would break the filter stage later).
    atomic_write_bytes(out, best.read_bytes())
    report = ToyDetectorReport(
        weights=str(out),
        names={int(k): str(v) for k, v in trained.names.items()},
        map50=float(metrics.box.map50),
        map50_95=float(metrics.box.map),
        eval_split=eval_split,
        n_eval_images=_split_size(data_yaml, eval_split),
        epochs=epochs,
        imgsz=imgsz,
    )
    atomic_write_bytes(out.with_suffix(".json"), json.dumps(asdict(report), indent=1).encode())
    shutil.rmtree(work / "eval", ignore_errors=True)
    log.info("toy detector: mAP50=%.3f on %d %s images -> %s", report.map50, report.n_eval_images, eval_split, out)
    return report
