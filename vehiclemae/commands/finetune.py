"""``vehiclemae finetune --config configs/vehiclemae/finetune_toy.yaml [--mode unsupervised] [--set key=value]``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from data_manifests.checkpoints import add_resume_flags
from data_manifests.cli import add_alias, add_config_options, print_config


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "finetune",
        help="fine-tune an encoder for vehicle Re-ID (VeRi-776 / VehicleID), supervised or unsupervised",
        description="Writes config.yaml, checkpoints/checkpoint-best.pt and checkpoint-last.pt, metrics.jsonl and "
        "result.json into output_dir; a rerun resumes from checkpoint-last.pt (docs/architecture.md, Checkpoints and "
        "resume). The best checkpoint is chosen on validation identities held out of the training identities "
        "(data.val_identities); the test split is evaluated once at the end.",
    )
    add_config_options(parser, "experiment: a name in configs/vehiclemae/ (finetune_toy, finetune_veri776) or a YAML "
                       "path", example="optim.epochs=2 --set model.init=export", root_key="data.root",
                       out_key="output_dir")  # fmt: skip
    parser.add_argument("--mode", choices=("supervised", "unsupervised"), default=None, help="overrides the config")
    add_alias(parser, "--output-dir", "--out")
    add_resume_flags(parser, "output_dir", epochs="no test evaluation")
    parser.set_defaults(handler=_finetune)


def _finetune(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..reid.config import FinetuneConfig
    from ..reid.runner import describe_result, run

    overrides = list(args.overrides)
    if args.mode:
        overrides.append(f"mode={args.mode}")
    cfg = load_config(FinetuneConfig, args.config, overrides)
    if print_config(args, cfg):
        return 0
    result = run(cfg, resume=not args.no_resume, stop_after_epoch=args.stop_after_epoch)
    if result.get("stopped"):
        print(f"stopped after {result['epochs_done']} of {result['epochs']} epochs; the same command again continues")
        return 0
    print(json.dumps(result, indent=2, default=float))
    # Last, so it is the line a reader sees: which split chose the model, and its test metrics.
    print(describe_result(result))
    print(f"written: {Path(cfg.output_dir) / 'result.json'}")
    return 0
