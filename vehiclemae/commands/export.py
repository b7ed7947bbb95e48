"""``vehiclemae export --checkpoint CK --out encoder.safetensors [--branch rgb|view]``: encoder weights for timm."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("export", help="write a pre-trained encoder as a timm safetensors file")
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="a training checkpoint, or a run folder (its checkpoints/checkpoint-last.pt)",
    )
    parser.add_argument("--out", required=True, help="output .safetensors file")
    parser.add_argument("--branch", choices=("rgb", "view"), default=None, help="default: method.export_branch")
    parser.add_argument("--force", action="store_true", help="replace --out if it exists")
    parser.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    from ..export import export_encoder

    path, meta = export_encoder(args.checkpoint, args.out, branch=args.branch, force=args.force)
    print(f"wrote {path} ({meta['model_name']}, {meta['img_size']} px, source={meta['source']})")
    return 0
