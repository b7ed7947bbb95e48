"""``diffveri toy-models`` (``make toy-models``): train the toy profile's detector and view SAM once, publish them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from pipeline.toy_models import ToyModelsSettings

    d = ToyModelsSettings()
    p = sub.add_parser(
        "toy-models",
        help="train the toy YOLO11n detector and view SAM on a toy world of their own; weights to models/toy/",
        description="Render a training toy world (identities disjoint from the demo's), train YOLO11n on its scenes "
        "and single-vehicle renders, fine-tune the view SAM on its exact masks (the profile's segment section), and "
        "write OUT/toy-yolo.pt, OUT/sam_view.pt and OUT/toy_models.json. See docs/pipeline.md#toy-models.",
    )
    p.add_argument("--config", default="configs/pipeline/toy.yaml", help="profile (its segment section trains SAM)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--work", default="data/toy-models", help="training world and run folders (default data/toy-models)")
    p.add_argument("--out", default="models/toy", help="where the weights are published (default models/toy)")
    p.add_argument("--identities", type=int, default=d.identities, help=f"training-world identities ({d.identities})")
    p.add_argument("--images-per-identity", type=int, default=d.images_per_identity)
    p.add_argument("--detection-images", type=int, default=d.detection_images, help="multi-vehicle scenes")
    p.add_argument("--detector-epochs", type=int, default=d.detector_epochs)
    p.add_argument("--detector-renders-per-identity", type=int, default=d.detector_renders_per_identity)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--reuse", action="store_true", help="keep models already trained in WORK (retrain the others)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(handler=_build)


def _build(args: argparse.Namespace) -> int:
    from pipeline.config import load_config
    from pipeline.toy_models import ToyModelsSettings, build_toy_models

    settings = ToyModelsSettings(
        identities=args.identities,
        images_per_identity=args.images_per_identity,
        detection_images=args.detection_images,
        detector_epochs=args.detector_epochs,
        detector_renders_per_identity=args.detector_renders_per_identity,
        seed=args.seed,
        reuse=args.reuse,
    )
    config = load_config(args.config, args.overrides)
    report = build_toy_models(config, Path(args.work), Path(args.out), settings, progress=not args.no_progress)
    print(json.dumps(report, indent=1, default=str))
    return 0
