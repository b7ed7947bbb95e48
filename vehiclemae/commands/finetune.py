"""``vehiclemae finetune --config configs/vehiclemae/finetune_toy.yaml [--mode unsupervised] [--set key=value]``."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "finetune",
        help="fine-tune an encoder for vehicle Re-ID (VeRi-776 / VehicleID), supervised or unsupervised",
        description="Writes config.yaml, best.pth, last.pth, metrics.jsonl and result.json into output_dir.",
    )
    parser.add_argument("--config", required=True, help="YAML experiment file (configs/vehiclemae/finetune_*.yaml)")
    parser.add_argument("--mode", choices=("supervised", "unsupervised"), default=None, help="overrides the config")
    parser.add_argument("--output-dir", default=None, help="overrides output_dir")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set optim.epochs=2 --set model.init=export (repeatable)",
    )
    parser.add_argument("--resume", action="store_true", help="continue the run in output_dir from its last.pth")
    parser.set_defaults(handler=_finetune)


def _finetune(args: argparse.Namespace) -> int:
    from ..benchmarks.runner import FinetuneConfig, run
    from ..config import load_config

    overrides = list(args.overrides)
    if args.mode:
        overrides.append(f"mode={args.mode}")
    if args.output_dir:
        overrides.append(f"output_dir={args.output_dir}")
    cfg = load_config(FinetuneConfig, args.config, overrides)
    result = run(cfg, resume=args.resume)
    print(json.dumps(result, indent=2, default=float))
    return 0
