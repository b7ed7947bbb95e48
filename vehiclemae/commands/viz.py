"""``vehiclemae viz-recon --checkpoint CK [--out PNG]``: a reconstruction grid of a pre-training checkpoint."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("viz-recon", help="PNG grid: input, masks, RGB and view-map reconstructions")
    parser.add_argument(
        "--checkpoint", required=True, help="a training checkpoint, or a run folder (its last checkpoint)"
    )
    parser.add_argument("--out", default=None, help="PNG path (default: <run>/recon-epochNNNN.png)")
    parser.add_argument("--root", default=None, help="data root (default: the run's data.root)")
    parser.add_argument("-n", type=int, default=4, help="number of images (rows)")
    parser.set_defaults(handler=_viz)


def _viz(args: argparse.Namespace) -> int:
    from ..engine.checkpoint import load_checkpoint, resolve_checkpoint
    from ..viz import reconstruction_grid

    out = args.out
    if out is None:
        ck = resolve_checkpoint(args.checkpoint)
        epoch = load_checkpoint(ck)["epoch"]
        out = ck.parent.parent / f"recon-epoch{epoch:04d}.png"
    path = reconstruction_grid(args.checkpoint, out, root=args.root, n=args.n)
    print(f"wrote {path}")
    return 0
