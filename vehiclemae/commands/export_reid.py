"""``vehiclemae export-reid --checkpoint RUN --out DIR``: a fine-tuned Re-ID model as safetensors + config."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "export-reid",
        help="write a fine-tuned Re-ID model (a fine-tuning run's best checkpoint) as model.safetensors + config.json",
        description="The folder holds no pickle; `vehiclemae eval --checkpoint DIR` evaluates it, and config.json "
        "gives the backbone's plain-timm recipe for use without this project.",
    )
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="a `vehiclemae finetune` run folder (its checkpoints/checkpoint-best.pt) or one of its checkpoints",
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--force", action="store_true", help="replace --out if it exists")
    parser.set_defaults(handler=_export_reid)


def _export_reid(args: argparse.Namespace) -> int:
    from ..reid.export import export_reid

    out = export_reid(args.checkpoint, args.out, force=args.force)
    print(f"wrote {out} (model.safetensors, config.json); evaluate with: vehiclemae eval --checkpoint {out} ...")
    return 0
