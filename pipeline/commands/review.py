"""``diffveri review checks|export|import|status``: consistency checks and the CSV round trip with annotators."""

from __future__ import annotations

import argparse
from pathlib import Path

from data_manifests.cli import add_config_options, print_config


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("review", help="export review batches (CSV + HTML), import annotated CSVs, show status")
    rsub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = rsub.add_parser("checks", help="score identity and view consistency of every kept image (review.checks)")
    p.add_argument("--root", required=True, help="data root")
    add_config_options(
        p, "profile whose review.checks and segment sections are used", example="review.checks.enabled=true"
    )
    p.add_argument("--overwrite", action="store_true", help="re-score images already scored by the same models")
    p.set_defaults(handler=_checks)
    p = rsub.add_parser("export", help="queue kept images into batches and write batch_<id>.csv/.html")
    p.add_argument("--root", required=True, help="data root")
    p.add_argument("--out", required=True, help="folder for the batch files")
    p.add_argument("--policy", default=None, help="all | random:<fraction> | uncertain | confident | first:<n>")
    p.add_argument("--batch-size", type=int, default=None)
    add_config_options(p, "profile whose review: section gives the defaults", required=False)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--audit-rate", type=float, default=None, help="uncertain policy: share outside the bands to audit")
    p.set_defaults(handler=_export)
    p = rsub.add_parser("import", help="validate an annotated CSV and record its decisions (all or nothing)")
    p.add_argument("file", help="batch_<id>.csv")
    p.add_argument("--root", required=True, help="data root")
    p.add_argument("--reviewer", default=None, help="reviewer recorded for rows with an empty reviewer cell")
    p.set_defaults(handler=_import)
    p = rsub.add_parser("status", help="pending/accepted/rejected/unsure per batch")
    p.add_argument("--root", required=True, help="data root")
    p.set_defaults(handler=_status)


def _export(args: argparse.Namespace) -> int:
    from pipeline.config import load_config, section
    from pipeline.review import ReviewConfig, export_batches

    config = load_config(args.config, args.overrides)  # no --config: the defaults
    if print_config(args, config):
        return 0
    cfg = section(config, "review", ReviewConfig)
    out = Path(args.out)
    ids = export_batches(
        Path(args.root),
        out,
        args.policy or cfg.policy,
        args.batch_size or cfg.batch_size,
        seed=cfg.seed if args.seed is None else args.seed,
        bands=cfg.bands(),
        audit_rate=cfg.audit_rate if args.audit_rate is None else args.audit_rate,
    )
    if not ids:
        print("nothing to export: every kept image is already in a batch (see `diffveri review status`)")
    for bid in ids:
        print(f"{out / f'batch_{bid}.csv'}  (contact sheet: {out / f'batch_{bid}.html'})")
    return 0


def _checks(args: argparse.Namespace) -> int:
    import dataclasses

    from pipeline.config import load_config, section
    from pipeline.review import ReviewConfig
    from pipeline.review.stage import run_consistency_checks

    config = load_config(args.config, args.overrides)
    if print_config(args, config):
        return 0
    cfg = section(config, "review", ReviewConfig)
    checks = dataclasses.replace(cfg.checks, overwrite=cfg.checks.overwrite or args.overwrite)
    counts = run_consistency_checks(config, checks, Path(args.root), None)
    print(", ".join(f"{k}={v}" for k, v in counts.items()))
    return 0


def _import(args: argparse.Namespace) -> int:
    from pipeline.review import import_review_csv

    report = import_review_csv(args.file, args.root, default_reviewer=args.reviewer)
    print(report)
    return 0 if report.ok else 1


def _status(args: argparse.Namespace) -> int:
    from pipeline.review import format_status, review_status

    print(format_status(review_status(Path(args.root))))
    return 0
