"""``vehiclemae eval --checkpoint CK --dataset veri776|vehicleid --root R``: the paper's table, a JSON file (with the
CMC curve of each result) and the CMC figure."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from data_manifests.cli import add_alias


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "eval",
        help="evaluate a fine-tuned checkpoint (or an exported encoder) on VeRi-776 / VehicleID",
        description="Prints a table in the paper's format and writes the metrics as JSON.",
    )
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="a `vehiclemae finetune` run folder (its checkpoints/checkpoint-best.pt) or checkpoint, an export-reid "
        "folder, or .safetensors",
    )
    parser.add_argument("--dataset", required=True, choices=("veri776", "vehicleid"))
    parser.add_argument("--root", required=True, help="dataset root (VeRi/ or VehicleID_V1.0/)")
    parser.add_argument("--name", default=None, help="method name in the table (default: the checkpoint's folder)")
    parser.add_argument("--test-size", type=int, default=None, help="VehicleID test list (default: all offered)")
    parser.add_argument("--trials", type=int, default=10, help="VehicleID random gallery trials")
    parser.add_argument("--metric", choices=("euclidean", "cosine"), default="euclidean")
    parser.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking (k1=20, k2=6, lambda=0.3)")
    parser.add_argument("--k1", type=int, default=20)
    parser.add_argument("--k2", type=int, default=6)
    parser.add_argument("--lambda-value", type=float, default=0.3)
    parser.add_argument("--img-size", type=int, default=None, help="default: the checkpoint's")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="output JSON (default: <checkpoint>.<dataset>.json)")
    add_alias(parser, "--json", "--out")
    parser.add_argument("--cmc-plot", default=None, help="CMC figure (default: the JSON path with .cmc.png)")
    parser.set_defaults(handler=_eval)


def format_table(rows: list[tuple[str, dict]], dataset: str) -> str:
    """Markdown table in the paper's layout: VeRi-776 mAP / Rank-1, VehicleID Rank-1 / Rank-5 (per test size)."""
    if dataset == "veri776":
        lines = ["| Method | VeRi-776 mAP | Rank-1 | Rank-5 | mINP |", "|---|---|---|---|---|"]
        lines += [
            f"| {n} | {r['mAP']:.1f} | {r['Rank-1']:.1f} | {r.get('Rank-5', float('nan')):.1f} | {r['mINP']:.1f} |"
            for n, r in rows
        ]
    else:
        lines = ["| Method | Test size | VehicleID Rank-1 | Rank-5 | mAP |", "|---|---|---|---|---|"]
        lines += [
            f"| {n} | {r.get('test_size')} | {r['Rank-1']:.1f} ± {r['Rank-1_std']:.1f} | {r['Rank-5']:.1f} | "
            f"{r['mAP']:.1f} |"
            for n, r in rows
        ]
    return "\n".join(lines)


def _eval(args: argparse.Namespace) -> int:
    from data_manifests import atomic_write_bytes
    from data_manifests.checkpoints import run_name

    from ..reid.checkpoints import load_model
    from ..reid.data import vehicleid_test_sizes
    from ..reid.evaluate import evaluate_model, load_split

    ckpt = Path(args.checkpoint)
    model, size = load_model(ckpt, args.img_size)
    rerank = {"k1": args.k1, "k2": args.k2, "lambda_value": args.lambda_value} if args.rerank else None
    name = args.name or run_name(ckpt)
    sizes = [None]
    if args.dataset == "vehicleid":
        sizes = [args.test_size] if args.test_size else vehicleid_test_sizes(args.root) or [None]
    results = []
    for test_size in sizes:
        split = load_split(args.dataset, args.root, test_size)
        res = evaluate_model(
            model,
            args.dataset,
            split,
            img_size=size,
            batch_size=args.batch_size,
            metric=args.metric,
            rerank=rerank,
            num_trials=args.trials,
            seed=args.seed,
            with_cmc=True,
        )
        results.append((name, res))
    print(format_table(results, args.dataset))
    out = Path(args.out) if args.out else ckpt.with_suffix(f".{args.dataset}.json")
    payload = {
        "checkpoint": str(ckpt),
        "dataset": args.dataset,
        "root": str(args.root),
        "rerank": rerank,
        "results": [r for _, r in results],
    }
    atomic_write_bytes(out, (json.dumps(payload, indent=2, default=float) + "\n").encode())
    print(f"wrote {out}")
    png = _plot_cmc(results, args, out)
    print(f"wrote {png}")
    return 0


def _plot_cmc(results: list[tuple[str, dict]], args: argparse.Namespace, json_path: Path) -> Path:
    """The CMC figure: one curve per result (VehicleID: per test size)."""
    from ..reid.plots import plot_cmc

    curves = [
        (name if r.get("test_size") is None else f"{name}, test size {r['test_size']}", r["cmc"]) for name, r in results
    ]
    dataset = "VeRi-776" if args.dataset == "veri776" else f"VehicleID (mean of {args.trials} trials)"
    out = Path(args.cmc_plot) if args.cmc_plot else json_path.with_suffix(".cmc.png")
    return plot_cmc(curves, out, title=f"CMC, {dataset}" + (", re-ranked" if args.rerank else ""))
