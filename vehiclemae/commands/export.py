"""``vehiclemae export --checkpoint CK --out encoder.safetensors [--branch rgb|view] [--timm-dir DIR]``: the encoder
for timm, as our safetensors file and as a ``save_for_hf`` folder plain timm loads (``local-dir:DIR``)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "export",
        help="write a pre-trained encoder as a timm safetensors file and a timm local-dir folder",
        description="Writes OUT (safetensors with our metadata; `--init export` of `vehiclemae finetune` reads it) "
        "and a timm save_for_hf folder (config.json + model.safetensors): "
        'timm.create_model("local-dir:DIR", pretrained=True) loads it without this project installed.',
    )
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="a training checkpoint, or a run folder (its checkpoints/checkpoint-last.pt)",
    )
    parser.add_argument("--out", required=True, help="output .safetensors file")
    parser.add_argument("--branch", choices=("rgb", "view"), default=None, help="default: method.export_branch")
    parser.add_argument("--timm-dir", default=None, help="the timm folder (default: OUT without suffix + _timm)")
    parser.add_argument("--no-timm-dir", action="store_true", help="write only the safetensors file")
    parser.add_argument("--force", action="store_true", help="replace --out (and the timm folder) if they exist")
    parser.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    from ..export import export_encoder

    path, meta = export_encoder(
        args.checkpoint,
        args.out,
        branch=args.branch,
        force=args.force,
        timm_dir=args.timm_dir,
        with_timm_dir=not args.no_timm_dir,
    )
    print(f"wrote {path} ({meta['model_name']}, {meta['img_size']} px, source={meta['source']})")
    if meta["timm_dir"] is not None:
        print(f'wrote {meta["timm_dir"]} (timm.create_model("local-dir:{meta["timm_dir"]}", pretrained=True))')
    return 0
