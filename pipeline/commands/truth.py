"""``diffveri truth --root R``: compare a toy-profile root's filter and view labels with the toy world's truth."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from data_manifests.cli import add_alias, add_config_options, print_config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "truth",
        help="filter precision/recall of keep and dominant-view accuracy against segments_gt (toy world), "
        "plus a contact sheet of the assembled dataset",
        description="Score a root built with the toyworld synthesis backend against its exact masks (segments_gt): "
        "which images the filter should have kept, and whether each segmented image's dominant view is the true "
        "one (next to the majority-class baseline). See docs/pipeline.md#checking-the-demo-against-the-truth.",
    )
    p.add_argument("--root", required=True, help="pipeline data root (generations, detections, segments, segments_gt)")
    add_config_options(p, "profile whose filter rules define 'keep'", required=False, default="toy")
    p.add_argument("--out", default=None, help="also write the figures as JSON to this path")
    add_alias(p, "--json", "--out")  # `--json` alone means "print JSON" in the other commands
    p.add_argument("--sheet", default=None, help="write a contact sheet of the assembled dataset to this PNG")
    p.add_argument("--no-pixels", action="store_true", help="skip the pixel-level view IoU (decodes every mask)")
    p.add_argument("--strict", action="store_true", help="exit with status 1 when a target of issue #20 is not met")
    p.set_defaults(handler=_truth)


def _truth(args: argparse.Namespace) -> int:
    import dataclasses

    from data_manifests import atomic_write_bytes
    from pipeline.config import load_config, section
    from pipeline.filter.stage import FilterConfig
    from pipeline.truth import compare_root, format_report, report_dict, targets

    root = Path(args.root)
    config = load_config(args.config, args.overrides)
    if print_config(args, config):
        return 0
    rules = section(config, "filter", FilterConfig).rules()
    report = compare_root(root, rules)
    if not args.no_pixels:
        from pipeline.segment.evaluate import evaluate_tables

        pixels, _ = evaluate_tables(root, keep=0)
        report = dataclasses.replace(report, pixels=pixels)
    print(format_report(report))
    if args.out:
        atomic_write_bytes(Path(args.out), json.dumps(report_dict(report), indent=1).encode())
        print(f"wrote {args.out}")
    if args.sheet:
        from pipeline.dataset_sheet import dataset_sheet

        print(f"wrote {dataset_sheet(root, Path(args.sheet))}")
    return 1 if args.strict and not all(ok for _, ok in targets(report)) else 0
