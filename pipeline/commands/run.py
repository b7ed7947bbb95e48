"""``diffveri run STAGE --config C --root R``: run one stage alone (the flow calls the same function)."""

from __future__ import annotations

import argparse
from pathlib import Path

from data_manifests.checkpoints import add_resume_flags
from data_manifests.cli import add_config_options, print_config

RESUMABLE = ("dreambooth",)


def register(sub: argparse._SubParsersAction) -> None:
    from pipeline.stages import STAGES

    parser = sub.add_parser("run", help="run one pipeline stage on a data root")
    parser.add_argument("stage", choices=list(STAGES), metavar="STAGE", help=f"one of: {', '.join(STAGES)}")
    add_config_options(parser, "profile: toy, paper (configs/pipeline/) or a YAML path",
                       example="synthesize.images_per_view=2")  # fmt: skip
    parser.add_argument("--root", required=True, help="data root (manifests are under ROOT/manifests)")
    parser.add_argument("--identities", default=None, help="comma-separated identity ids (default: all)")
    add_resume_flags(parser, "a trained stage's (dreambooth) identity folder")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from pipeline.config import load_config
    from pipeline.stages import get_stage

    config = load_config(args.config, args.overrides)
    if print_config(args, config):
        return 0
    identities = [i for i in args.identities.split(",") if i] if args.identities else None
    # Only the stages that train (dreambooth) keep checkpoints; the others resume by rows and take no resume flag.
    if args.no_resume and args.stage not in RESUMABLE:
        raise ValueError(f"--no-resume applies to the training stages ({', '.join(RESUMABLE)}), not to {args.stage}")
    extra = {"resume": False} if args.no_resume else {}
    result = get_stage(args.stage)(config, Path(args.root), identities, **extra)
    print(result)
    return 1 if result.counts.get("failed") and not result.counts.get("processed") else 0
