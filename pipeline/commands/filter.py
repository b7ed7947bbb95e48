"""``diffveri toyworld-detector --root R``: train the toy profile's YOLO detector (the filter runs via ``run``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "toyworld-detector",
        help="train YOLO11n on the toy world's detection/ dataset (CPU, minutes) and report mAP50 on held-out images",
    )
    p.add_argument("--root", required=True, help="data root written by `diffveri toyworld --out ROOT`")
    p.add_argument("--data", default=None, help="YOLO data.yaml (default: ROOT/detection/data.yaml)")
    p.add_argument("--out", default=None, help="weights file (default: ROOT/models/toy-yolo.pt)")
    p.add_argument("--epochs", type=int, default=30, help="training epochs (default 30)")
    p.add_argument("--imgsz", type=int, default=128)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--optimizer", default="AdamW", help="ultralytics optimizer name (default AdamW)")
    p.add_argument("--lr0", type=float, default=0.002, help="initial learning rate (default 0.002)")
    p.add_argument("--mosaic", type=float, default=1.0, help="mosaic augmentation probability (default 1.0)")
    p.set_defaults(handler=_train)


def _train(args: argparse.Namespace) -> int:
    from pipeline.filter.toy_detector import train_toy_detector

    root = Path(args.root)
    report = train_toy_detector(
        root=root,
        data_yaml=Path(args.data) if args.data else root / "detection" / "data.yaml",
        out=Path(args.out) if args.out else None,
        epochs=args.epochs,
        imgsz=args.imgsz,
        batch=args.batch,
        seed=args.seed,
        device=args.device,
        optimizer=args.optimizer,
        lr0=args.lr0,
        mosaic=args.mosaic,
    )
    print(json.dumps(report.__dict__, indent=1))
    print(f"mAP50={report.map50:.3f} on {report.n_eval_images} held-out {report.eval_split} images -> {report.weights}")
    return 0
