"""``diffveri segment finetune|eval|synth-world|annotations``: fine-tune the view SAM, score it, make annotated
test data, and send images to annotators and bring their view masks back.

Inference over a pipeline root is the ``segment`` stage: ``diffveri run segment --config C --root R``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from data_manifests.checkpoints import add_resume_flags
from data_manifests.cli import add_alias, add_config_options, print_config


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("segment", help="fine-tune / evaluate the SAM view segmenter")
    ssub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    p = ssub.add_parser("finetune", help="fine-tune the view SAM on annotated masks (a segments-schema table)")
    add_config_options(p, "profile: toy, paper or a YAML path", example="segment.finetune.steps=100")
    p.add_argument("--root", required=True, help="data root with generations + the annotated masks table")
    p.add_argument("--gt-root", default=None, help="read the masks table from this root instead (paths from --root)")
    add_resume_flags(p, "finetune.out_dir")
    p.set_defaults(handler=_finetune)

    p = ssub.add_parser("eval", help="per-class IoU and mIoU against ground truth, plus a comparison PNG")
    p.add_argument("--root", required=True, help="data root whose segments table holds the predictions")
    p.add_argument("--gt-root", default=None, help="ground-truth root (its --table); default: --root")
    add_alias(p, "--gt", "--gt-root")
    p.add_argument("--table", default=None, help="ground-truth table (default segments_gt, or segments with --gt-root)")
    p.add_argument(
        "--checkpoint",
        default=None,
        help="predict on the fly with this checkpoint over the ground truth's images (true boxes) instead of "
        "reading --root's segments table; --root is then the ground-truth root",
    )
    p.add_argument("--box-jitter", type=float, default=0.0, help="with --checkpoint: box noise (fraction of side)")
    p.add_argument("--out", default=None, help="comparison PNG (default ROOT/reports/segment_eval.png)")
    add_alias(p, "--png", "--out")
    p.add_argument("--n-png", type=int, default=6, help="images in the PNG (default 6)")
    p.add_argument("--metrics", default=None, help="also write the metrics as JSON to this path")
    add_alias(p, "--json", "--metrics")  # `--json` alone means "print JSON" in the other commands
    p.set_defaults(handler=_eval)

    p = ssub.add_parser("synth-world", help="render a small annotated world (images, generations, segments)")
    p.add_argument("--root", required=True, help="data root to write")
    add_alias(p, "--out", "--root")
    p.add_argument("--identities", type=int, default=8)
    p.add_argument("--images-per-identity", type=int, default=8)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", default="auto", choices=["auto", "toyworld", "boxes"])
    p.set_defaults(handler=_synth)

    _register_annotations(ssub)


def _register_annotations(ssub: argparse._SubParsersAction) -> None:
    from data_manifests import VIEW_SETS

    parser = ssub.add_parser("annotations", help="export images for view-mask annotation; import the masks back")
    asub = parser.add_subparsers(dest="annotations_action", metavar="ACTION", required=True)
    p = asub.add_parser(
        "export",
        help="copy images to annotate to OUT/images and write a COCO file or Label Studio tasks (docs/segment.md)",
    )
    p.add_argument("--root", required=True, help="data root (generations, detections, reviews, segments)")
    p.add_argument("--out", required=True, help="folder to write (images/ + annotations.json or tasks.json)")
    p.add_argument("--format", dest="fmt", required=True, choices=["coco", "labelstudio"])
    p.add_argument("--sample", type=int, default=None, help="a seeded random sample of N images (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of --sample (default 0)")
    p.add_argument("--view-set", default="pven", choices=sorted(VIEW_SETS), help="view classes (default pven)")
    p.add_argument(
        "--checkpoint",
        default=None,
        help="labelstudio: pre-annotate images the segments table has no prediction for with this segmenter "
        "(default ROOT/models/segment/sam_view.pt when it exists)",
    )
    p.add_argument("--url-prefix", default="", help="labelstudio: prefix of data.image, e.g. /data/local-files/?d=ann/")
    p.set_defaults(handler=_annotations_export)
    p = asub.add_parser(
        "import",
        help="validate a COCO / Label Studio file whole, then write human segments rows (nothing on any problem)",
    )
    p.add_argument("file", help="COCO annotations JSON, or a Label Studio JSON export")
    p.add_argument("--root", required=True, help="data root the file was exported from")
    p.add_argument("--format", dest="fmt", default=None, choices=["coco", "labelstudio"], help="default: detected")
    p.add_argument("--view-set", default="pven", choices=sorted(VIEW_SETS), help="view classes (default pven)")
    p.add_argument(
        "--category-map",
        nargs="+",
        action="extend",
        default=[],
        metavar="NAME=VIEW",
        help="map the file's category names onto view classes, e.g. 'Front face=front' (a view of background: skip)",
    )
    p.add_argument(
        "--overlap-tolerance",
        type=float,
        default=0.05,
        help="two views may share at most this fraction of the smaller region (boundary slop; default 0.05); "
        "more is refused",
    )
    p.set_defaults(handler=_annotations_import)


def _finetune(args: argparse.Namespace) -> int:
    from pipeline.config import load_config, section
    from pipeline.segment.config import SegmentConfig
    from pipeline.segment.data import resolve_view_classes
    from pipeline.segment.finetune import finetune

    config = load_config(args.config, args.overrides)
    if print_config(args, config):
        return 0
    cfg = section(config, "segment", SegmentConfig)
    root = Path(args.root)
    ft = cfg.finetune

    def under_root(p: str) -> Path:
        return Path(p) if Path(p).is_absolute() else root / p

    result = finetune(
        root=root,
        gt_root=Path(args.gt_root) if args.gt_root else None,
        view_classes=resolve_view_classes(cfg.view_set, cfg.view_classes),
        model=cfg.model,
        checkpoint=under_root(cfg.checkpoint),
        out_dir=under_root(ft.out_dir),
        table=ft.table,
        refs=tuple(ft.refs),
        train_image_encoder=ft.train_image_encoder,
        train_prompt_encoder=ft.train_prompt_encoder,
        steps=ft.steps,
        max_minutes=ft.max_minutes,
        batch_size=ft.batch_size,
        lr=ft.lr,
        weight_decay=ft.weight_decay,
        warmup_steps=ft.warmup_steps,
        grad_clip=ft.grad_clip,
        dice_weight=ft.dice_weight,
        view_weight=ft.view_weight,
        box_jitter=ft.box_jitter,
        hflip=ft.hflip,
        scale_jitter=ft.scale_jitter,
        translate=ft.translate,
        color_jitter=ft.color_jitter,
        val_fraction=ft.val_fraction,
        eval_every=ft.eval_every,
        checkpoint_every=ft.checkpoint_every,
        num_threads=ft.num_threads,
        seed=ft.seed,
        resume=not args.no_resume,
        device=cfg.device,
        config_snapshot={"segment": config.get("segment"), "overrides": args.overrides, "config": str(args.config)},
    )
    print(f"checkpoint {result.checkpoint} (sam:{result.sha256})")
    print(f"steps {result.steps} in {result.seconds:.0f} s; loss {result.first_loss:.4f} -> {result.final_loss:.4f}")
    if result.val is not None:
        from pipeline.segment.metrics import format_result

        print("validation (held-out identities, true boxes):")
        print(format_result(result.val))
    return 0


def _eval(args: argparse.Namespace) -> int:
    from pipeline.segment.evaluate import comparison_png, evaluate_checkpoint, evaluate_tables
    from pipeline.segment.metrics import format_result

    root = Path(args.root)
    if args.checkpoint:
        table = args.table or "segments"
        result, samples = evaluate_checkpoint(
            Path(args.checkpoint), root, table, box_jitter=args.box_jitter, keep=args.n_png
        )
    else:
        gt_root = Path(args.gt_root) if args.gt_root else root
        table = args.table or ("segments" if args.gt_root else "segments_gt")
        result, samples = evaluate_tables(root, gt_root, table, keep=args.n_png)
    print(format_result(result))
    if result.get("missing"):
        print(f"ground-truth images without an ok prediction: {result['missing']}")
    png = Path(args.out) if args.out else root / "reports" / "segment_eval.png"
    if samples:
        comparison_png(png, samples, tuple(result["iou"]))
        print(f"wrote {png}")
    if args.metrics:
        from data_manifests import atomic_write_bytes

        atomic_write_bytes(Path(args.metrics), json.dumps(result, indent=1).encode())
    return 0


def _synth(args: argparse.Namespace) -> int:
    from pipeline.toyworld.synthetic import write_annotated_world

    ids = write_annotated_world(
        Path(args.root), args.identities, args.images_per_identity, args.size, args.seed, args.backend
    )
    print(f"wrote {len(ids)} annotated images under {args.root}")
    return 0


def _annotations_export(args: argparse.Namespace) -> int:
    from data_manifests import VIEW_SETS
    from pipeline.segment.annotation_export import export_annotations

    root = Path(args.root)
    checkpoint = Path(args.checkpoint) if args.checkpoint else root / "models" / "segment" / "sam_view.pt"
    if args.checkpoint and not checkpoint.is_file():
        raise FileNotFoundError(f"--checkpoint {checkpoint} does not exist")
    result = export_annotations(
        root,
        Path(args.out),
        fmt=args.fmt,
        view_classes=VIEW_SETS[args.view_set],
        sample=args.sample,
        seed=args.seed,
        checkpoint=checkpoint if args.fmt == "labelstudio" else None,
        url_prefix=args.url_prefix,
    )
    print(f"exported {result.images} images to {result.out} ({result.preannotated} with pre-annotations)")
    for path in result.files:
        print(f"  {path}")
    return 0


def _annotations_import(args: argparse.Namespace) -> int:
    from data_manifests import VIEW_SETS
    from pipeline.segment.annotation_import import import_annotations, parse_category_map

    result = import_annotations(
        Path(args.file),
        Path(args.root),
        view_classes=VIEW_SETS[args.view_set],
        fmt=args.fmt,
        category_map=parse_category_map(args.category_map),
        overlap_tolerance=args.overlap_tolerance,
    )
    print(
        f"imported {result.rows} annotated images ({result.segmenter_ref}); {result.unannotated} of the file's "
        f"{result.images_in_file} images had no region; {result.replaced} replaced an earlier segments row"
    )
    return 0
