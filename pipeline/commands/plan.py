"""``diffveri plan --config C --images N``: identities, images, GPU-hours, annotator-hours and storage per stage."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plan",
        help="what a build of N images needs per stage: identities, images, GPU-hours, annotator-hours, storage",
        description="Arithmetic on the profile (views, images per view, sampler steps, review policy) and its plan: "
        "section (yields, FLOPs per unit, achieved GPU throughput, annotator seconds, bytes). docs/scale.md explains "
        "every figure.",
    )
    p.add_argument("--config", required=True, help="pipeline profile, e.g. configs/pipeline/paper.yaml")
    p.add_argument("--images", type=int, required=True, help="final dataset size (the paper: 1712703)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set plan.yields.filter=0.6 (repeatable)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=_plan)


def _plan(args: argparse.Namespace) -> int:
    from pipeline.config import load_config
    from pipeline.plan import format_plan, make_plan

    plan = make_plan(load_config(args.config, args.overrides), args.images)
    print(json.dumps(plan.to_dict(), indent=1) if args.json else format_plan(plan))
    return 0
