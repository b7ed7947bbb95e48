"""``diffveri toy world|detector|models|sd``: the toy assets (the procedural world, its YOLO detector, the published
toy detector + view SAM, the tiny Stable Diffusion pipeline). The old names (``toyworld``, ``toyworld-detector``,
``toy-models``, ``models build-toy``) still work for one release, with a warning."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from data_manifests.cli import add_alias, add_config_options, add_deprecated_command, print_config


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("toy", help="toy assets: the toy world, its detector, the toy models, a tiny SD pipeline")
    tsub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, add_arguments, handler, old in COMMANDS:
        add_arguments(tsub.add_parser(name, **HELP[name])).set_defaults(handler=handler)
        if old:
            add_deprecated_command(sub, old, f"diffveri toy {name}", add_arguments, handler)


# --------------------------------------------------------------------------------------------------------- world
def add_world_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--root", required=True, help="data root to write")
    add_alias(p, "--out", "--root")
    p.add_argument("--identities", type=int, default=12, help="number of vehicle identities (default 12)")
    p.add_argument("--images-per-identity", type=int, default=16, help="rendered images per identity (default 16)")
    p.add_argument("--size", type=int, default=128, help="image side in pixels (default 128)")
    p.add_argument("--seed", type=int, default=0, help="world seed (default 0)")
    p.add_argument("--workers", type=int, default=0, help="render in K processes (default 0: in this process)")
    p.add_argument(
        "--view-classes", choices=["toyworld", "pven"], default="toyworld", help="mask classes (default toyworld)"
    )
    p.add_argument("--occluder-probability", type=float, default=0.1, help="share of images with occluders (0.1)")
    p.add_argument("--train-fraction", type=float, default=0.5, help="share of identities for training (0.5)")
    p.add_argument("--queries-per-identity", type=int, default=2, help="queries per test identity (default 2)")
    p.add_argument("--detection-images", type=int, default=0, help="detection scenes (default max(16, 4 N))")
    p.add_argument(
        "--detection-classes", choices=["vehicle", "coco"], default="vehicle", help="YOLO classes (default vehicle)"
    )
    p.add_argument(
        "--family-size",
        type=int,
        default=1,
        help="K >= 2: the family world, identities in families of K that share class, size and colour and differ "
        "only by per-face cues, split into train/test by family (default 1: the classic world)",
    )
    p.add_argument(
        "--cues-per-face",
        type=int,
        default=1,
        help="family world: C individual cues on each face instead of one, so more of every view tells siblings "
        "apart (needs --family-size x C <= 15; default 1)",
    )
    p.add_argument(
        "--first-index",
        type=int,
        default=0,
        help="first identity index, a multiple of --family-size: the world holds [N, N + identities); e.g. 10000 "
        "for a pre-training world disjoint from the benchmark world of the same seed (default 0)",
    )
    p.add_argument(
        "--reid-crop",
        type=float,
        default=None,
        metavar="MARGIN",
        help="write the VeRi and VehicleID images as vehicle crops: the vehicle's box grown by MARGIN of its size "
        "per side, e.g. 0.1 (default: whole renders)",
    )
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return p


def run_world(args: argparse.Namespace) -> int:
    from pipeline.toyworld.export import ToyworldSettings, build_toyworld

    settings = ToyworldSettings(
        identities=args.identities,
        images_per_identity=args.images_per_identity,
        size=args.size,
        seed=args.seed,
        occluder_probability=args.occluder_probability,
        view_classes=args.view_classes,
        train_fraction=args.train_fraction,
        queries_per_identity=args.queries_per_identity,
        detection_images=args.detection_images,
        detection_classes=args.detection_classes,
        family_size=args.family_size,
        cues_per_face=args.cues_per_face,
        first_index=args.first_index,
        reid_crop=args.reid_crop,
    )
    print(build_toyworld(args.root, settings, workers=args.workers, progress=not args.no_progress))
    return 0


# ------------------------------------------------------------------------------------------------------ detector
def add_detector_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--root", required=True, help="data root written by `diffveri toy world --root ROOT`")
    p.add_argument("--data", default=None, help="YOLO data.yaml (default: ROOT/detection/data.yaml)")
    p.add_argument("--out", default=None, help="weights file (default: ROOT/models/toy-yolo.pt)")
    p.add_argument("--epochs", type=int, default=30, help="training epochs (default 30)")
    p.add_argument("--img-size", type=int, default=128, help="detector input side (default 128)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--optimizer", default="AdamW", help="ultralytics optimizer name (default AdamW)")
    p.add_argument("--lr", type=float, default=0.002, help="initial learning rate (default 0.002)")
    p.add_argument("--mosaic", type=float, default=1.0, help="mosaic augmentation probability (default 1.0)")
    for old, new in (("--imgsz", "--img-size"), ("--batch", "--batch-size"), ("--lr0", "--lr")):
        add_alias(p, old, new)
    return p


def run_detector(args: argparse.Namespace) -> int:
    from pipeline.filter.toy_detector import train_toy_detector

    root = Path(args.root)
    report = train_toy_detector(
        root=root,
        data_yaml=Path(args.data) if args.data else root / "detection" / "data.yaml",
        out=Path(args.out) if args.out else None,
        epochs=args.epochs,
        imgsz=args.img_size,
        batch=args.batch_size,
        seed=args.seed,
        device=args.device,
        optimizer=args.optimizer,
        lr0=args.lr,
        mosaic=args.mosaic,
    )
    print(json.dumps(report.__dict__, indent=1))
    print(f"mAP50={report.map50:.3f} on {report.n_eval_images} held-out {report.eval_split} images -> {report.weights}")
    return 0


# -------------------------------------------------------------------------------------------------------- models
def add_models_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from pipeline.toy_models import ToyModelsSettings

    d = ToyModelsSettings()
    add_config_options(p, "profile (its segment section trains SAM)", required=False, default="toy")
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
    return p


def run_models(args: argparse.Namespace) -> int:
    from pipeline.config import load_config
    from pipeline.toy_models import ToyModelsSettings, build_toy_models

    config = load_config(args.config, args.overrides)
    if print_config(args, config):
        return 0
    settings = ToyModelsSettings(
        identities=args.identities,
        images_per_identity=args.images_per_identity,
        detection_images=args.detection_images,
        detector_epochs=args.detector_epochs,
        detector_renders_per_identity=args.detector_renders_per_identity,
        seed=args.seed,
        reuse=args.reuse,
    )
    report = build_toy_models(config, Path(args.work), Path(args.out), settings, progress=not args.no_progress)
    print(json.dumps(report, indent=1, default=str))
    return 0


# ------------------------------------------------------------------------------------------------------------ sd
def add_sd_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--root", required=True, help="data root")
    p.add_argument("--out", default="models/tiny-sd", help="folder relative to ROOT (default models/tiny-sd)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="rebuild even if the folder exists")
    return p


def run_sd(args: argparse.Namespace) -> int:
    from pipeline.generate.tiny_models import save_tiny_pipeline

    out = save_tiny_pipeline(Path(args.root) / args.out, seed=args.seed, overwrite=args.overwrite)
    print(f"tiny Stable Diffusion pipeline at {out}")
    return 0


# name, arguments, handler, deprecated top-level name
COMMANDS = (
    ("world", add_world_arguments, run_world, "toyworld"),
    ("detector", add_detector_arguments, run_detector, "toyworld-detector"),
    ("models", add_models_arguments, run_models, "toy-models"),
    ("sd", add_sd_arguments, run_sd, None),  # was `diffveri models build-toy` (pipeline.commands.generate)
)
HELP = {
    "world": dict(
        help="render procedural vehicles with exact view masks: manifests, VeRi, VehicleID and YOLO layouts",
        description="Render N toy vehicle identities from M viewpoints each (exact per-pixel view labels) and write "
        "ROOT/manifests (subjects, generations, segments, segments_gt, diffveri), ROOT/VeRi, ROOT/VehicleID_V1.0 and "
        "ROOT/detection. Deterministic for a seed; re-running resumes. See docs/toyworld.md.",
    ),
    "detector": dict(
        help="train YOLO11n on the toy world's detection/ dataset (CPU, minutes) and report mAP50 on held-out images"
    ),
    "models": dict(
        help="train the toy YOLO11n detector and view SAM on a toy world of their own; weights to models/toy/",
        description="Render a training toy world (identities disjoint from the demo's), train YOLO11n on its scenes "
        "and single-vehicle renders, fine-tune the view SAM on its exact masks (the profile's segment section), and "
        "write OUT/toy-yolo.pt, OUT/sam_view.pt and OUT/toy_models.json. See docs/pipeline.md#toy-models.",
    ),
    "sd": dict(help="build the tiny random Stable Diffusion pipeline of the toy profile (offline)"),
}
