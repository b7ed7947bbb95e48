"""``diffveri toyworld --out DIR ...``: render the procedural toy world and write manifests and dataset layouts."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "toyworld",
        help="render procedural vehicles with exact view masks: manifests, VeRi, VehicleID and YOLO layouts",
        description="Render N toy vehicle identities from M viewpoints each (exact per-pixel view labels) and write "
        "DIR/manifests (subjects, generations, segments, segments_gt, diffveri), DIR/VeRi, DIR/VehicleID_V1.0 and "
        "DIR/detection. Deterministic for a seed; re-running resumes. See docs/toyworld.md.",
    )
    p.add_argument("--out", required=True, help="output data root")
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
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
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
        first_index=args.first_index,
        reid_crop=args.reid_crop,
    )
    print(build_toyworld(args.out, settings, workers=args.workers, progress=not args.no_progress))
    return 0
