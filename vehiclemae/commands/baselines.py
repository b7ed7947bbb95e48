"""``vehiclemae baselines --root R``: training-free Re-ID reference points (colour histogram, oracle, chance)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from data_manifests.cli import add_alias


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "baselines",
        help="training-free baselines (histogram, oracle, chance) on a VeRi-776 layout",
        description="Colour-histogram retrieval, the toy world's family-attribute oracle and random distances on the "
        "test split; prints a table and optionally writes JSON.",
    )
    parser.add_argument("--root", required=True, help="VeRi-776 layout root (image_query/, image_test/, ...)")
    parser.add_argument(
        "--baselines",
        default=None,
        help="comma-separated from histogram,oracle,chance (default: all; oracle only with toyworld_meta.json)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-seeds", type=int, default=5, help="seeds averaged by oracle (jitter) and chance")
    parser.add_argument("--out", default=None, help="write the results here (JSON)")
    add_alias(parser, "--json", "--out")
    parser.set_defaults(handler=_baselines)


def _baselines(args: argparse.Namespace) -> int:
    from data_manifests import atomic_write_bytes

    from ..reid.baselines import check_baselines, run_baselines
    from ..reid.views import format_retrieval_table

    names = check_baselines(args.baselines) if args.baselines is not None else None
    results = run_baselines(args.root, names, seed=args.seed, num_seeds=args.num_seeds)
    print(format_retrieval_table(results, "baseline"))
    if args.out:
        payload = {"root": str(args.root), "seed": args.seed, "num_seeds": args.num_seeds, "results": results}
        atomic_write_bytes(Path(args.out), (json.dumps(payload, indent=2, default=float) + "\n").encode())
        print(f"wrote {args.out}")
    return 0
