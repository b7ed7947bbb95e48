"""``vehiclemae probe``: frozen-encoder Re-ID protocols (k-NN on mean / class tokens, linear probe) on VeRi-776."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from data_manifests.cli import add_alias


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "probe",
        help="frozen-encoder Re-ID protocols (knn_mean, knn_cls, linear_probe) on a VeRi-776 layout",
        description="Evaluates an exported encoder, or a random initialisation, without fine-tuning it. Prints a "
        "table (view metrics when ROOT/toyworld_meta.json exists) and optionally writes JSON.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="an exported encoder (.safetensors from `vehiclemae export`)")
    source.add_argument("--init", choices=("scratch",), help="a random initialisation instead of a checkpoint")
    parser.add_argument("--model-name", default="vehiclemae_vit_toy_patch8", help="timm name for --init scratch")
    parser.add_argument("--seed", type=int, default=0, help="random-init seed and linear-probe seed")
    parser.add_argument("--dataset", default="veri776", choices=("veri776",))
    parser.add_argument("--root", required=True, help="VeRi-776 layout root (image_train/, image_query/, image_test/)")
    parser.add_argument(
        "--protocols", default="knn_mean,knn_cls,linear_probe", help="comma-separated (default: all three)"
    )
    parser.add_argument(
        "--split",
        default="test",
        choices=("test", "val"),
        help="evaluate on the test query/gallery (default) or on validation identities held out of the training "
        "identities (choose pre-training settings on val; the probe then trains on the rest)",
    )
    parser.add_argument("--img-size", type=int, default=None, help="default: the encoder's")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=None, help="write the results here (JSON)")
    add_alias(parser, "--json", "--out")
    parser.set_defaults(handler=_probe)


def _probe(args: argparse.Namespace) -> int:
    from data_manifests import atomic_write_bytes

    from ..reid.frozen import check_protocols, run_frozen
    from ..reid.views import format_retrieval_table

    protocols = check_protocols(args.protocols)  # before any heavy work
    if args.checkpoint and not Path(args.checkpoint).is_file():
        raise FileNotFoundError(f"encoder file {args.checkpoint} does not exist (write one with `vehiclemae export`)")
    results = run_frozen(
        args.checkpoint,
        args.root,
        protocols,
        init_seed=args.seed,
        model_name=args.model_name,
        img_size=args.img_size,
        batch_size=args.batch_size,
        seed=args.seed,
        device=args.device,
        split=args.split,
    )
    print(f"split: {args.split}")
    print(format_retrieval_table(results))
    if "linear_probe" in results:
        lp = results["linear_probe"]
        print(
            f"linear probe: epoch {lp['selected_epoch']} selected on {lp['num_val_ids']} validation ids "
            f"(val mAP {lp['val_mAP']:.1f}); trained on {lp['num_train_ids']} ids"
        )
    if args.out:
        payload = {
            "encoder": args.checkpoint or f"scratch:{args.model_name}:seed{args.seed}",
            "dataset": args.dataset,
            "root": str(args.root),
            "split": args.split,
            "results": results,
        }
        atomic_write_bytes(Path(args.out), (json.dumps(payload, indent=2, default=float) + "\n").encode())
        print(f"wrote {args.out}")
    return 0
