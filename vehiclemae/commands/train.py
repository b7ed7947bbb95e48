"""``vehiclemae train --config configs/vehiclemae/<name>.yaml [--set key=value ...] [--no-resume]``."""

from __future__ import annotations

import argparse

from data_manifests.checkpoints import add_resume_flags


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "train",
        help="pre-train VehicleMAE / VMIM / MAE on a diffveri manifest",
        description="Pre-train on the diffveri table of data.root. Multi-GPU: `accelerate launch -m vehiclemae.cli "
        "train ...` (or torchrun). The run folder is the config key output_dir.",
    )
    parser.add_argument(
        "--config", required=True, help="experiment: a name in configs/vehiclemae/ (toy, paper) or a YAML path"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set epochs=2 --set optim.batch_size=16 (repeatable)",
    )
    add_resume_flags(parser, "output_dir")
    parser.add_argument(
        "--stop-after-epoch",
        type=int,
        default=None,
        metavar="E",
        help="return after E epochs are done and checkpointed (e.g. to fit a job time limit); a rerun continues",
    )
    parser.set_defaults(handler=_train)


def _train(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..engine import PretrainConfig, run_pretraining

    cfg = load_config(PretrainConfig, args.config, args.overrides)
    path = run_pretraining(cfg, resume=not args.no_resume, stop_after_epoch=args.stop_after_epoch)
    print(f"last checkpoint: {path}")
    return 0
