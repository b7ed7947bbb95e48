"""``diffveri plan --config C --images N [--root PILOT_ROOT]``: identities, images, GPU-hours, annotator-hours and
storage per stage."""

from __future__ import annotations

import argparse
import json

from data_manifests.cli import add_alias, add_config_options, print_config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plan",
        help="what a build of N images needs per stage: identities, images, GPU-hours, annotator-hours, storage",
        description="Arithmetic on the profile (views, images per view, sampler steps, review policy) and its plan: "
        "section (yields, FLOPs per unit, achieved GPU throughput, annotator seconds, bytes). docs/scale.md explains "
        "every figure.",
    )
    add_config_options(p, "pipeline profile, e.g. configs/pipeline/paper.yaml", example="plan.yields.filter=0.6")
    p.add_argument("--images", type=int, required=True, help="final dataset size (the paper: 1712703)")
    p.add_argument(
        "--root",
        default=None,
        help="a pilot build's data root: measure plan.yields and plan.review_share on its manifests and use them",
    )
    add_alias(p, "--pilot", "--root")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=_plan)


def _plan(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pipeline.config import load_config
    from pipeline.plan import format_plan, make_plan, measure_pilot, with_pilot

    config = load_config(args.config, args.overrides)
    if print_config(args, config):
        return 0
    measured = None
    if args.root:
        measured = measure_pilot(Path(args.root))
        if not measured:
            raise ValueError(f"{args.root}: no generations, detections, reviews or segments rows to measure")
        config = with_pilot(config, measured)
    plan = make_plan(config, args.images)
    if args.json:
        print(json.dumps({**plan.to_dict(), "pilot": measured}, indent=1))
    else:
        if measured:
            print(f"measured on {args.root}: " + ", ".join(f"{k} {v:g}" for k, v in measured.items()) + "\n")
        print(format_plan(plan))
    return 0
