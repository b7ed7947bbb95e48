"""``vehiclemae train --config configs/vehiclemae/<name>.yaml [--set key=value ...] [--no-resume]``."""

from __future__ import annotations

import argparse

from data_manifests.checkpoints import add_resume_flags
from data_manifests.cli import add_config_options, print_config


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "train",
        help="pre-train VehicleMAE / VMIM / MAE on a diffveri manifest",
        description="Pre-train on the diffveri table of data.root. Multi-GPU: `accelerate launch -m vehiclemae.cli "
        "train ...` (or torchrun). The run folder is the config key output_dir.",
    )
    add_config_options(parser, "experiment: a name in configs/vehiclemae/ (toy, paper) or a YAML path",
                       example="epochs=2 --set optim.batch_size=16", root_key="data.root",
                       out_key="output_dir")  # fmt: skip
    add_resume_flags(parser, "output_dir", epochs="e.g. to fit a job time limit")
    parser.set_defaults(handler=_train)


def _train(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..engine import PretrainConfig, run_pretraining

    cfg = load_config(PretrainConfig, args.config, args.overrides)
    if print_config(args, cfg):
        return 0
    path = run_pretraining(cfg, resume=not args.no_resume, stop_after_epoch=args.stop_after_epoch)
    print(f"last checkpoint: {path}")
    return 0
