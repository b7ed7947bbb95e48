"""``vehiclemae plot distances|tsne --checkpoint CK [--checkpoint CK2 ...] --dataset D --root R --out PNG``.

On a toy-world root (``toyworld_meta.json``) the t-SNE figure has a second row coloured by view."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("plot", help="pair-distance histograms or t-SNE of Re-ID features (PNG)")
    parser.add_argument("kind", choices=("distances", "tsne"))
    parser.add_argument(
        "--checkpoint", action="append", required=True, help="checkpoint or exported encoder; repeat to compare"
    )
    parser.add_argument("--label", action="append", default=None, help="panel label per checkpoint (repeatable)")
    parser.add_argument("--dataset", required=True, choices=("veri776", "vehicleid"))
    parser.add_argument("--root", required=True)
    parser.add_argument("--split", default="test", choices=("train", "test"), help="which images to embed")
    parser.add_argument("--max-ids", type=int, default=20, help="t-SNE: identities shown")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="output PNG")
    parser.set_defaults(handler=_plot)


def _plot(args: argparse.Namespace) -> int:
    from data_manifests.checkpoints import run_name

    from ..reid import finetune as ft
    from ..reid.checkpoints import load_model
    from ..reid.evaluate import eval_loader, load_split
    from ..reid.plots import plot_distance_distributions, plot_tsne

    labels = args.label or [run_name(c) for c in args.checkpoint]
    if len(labels) != len(args.checkpoint):
        raise ValueError(f"{len(labels)} --label for {len(args.checkpoint)} --checkpoint")
    split = load_split(args.dataset, args.root)
    if args.split == "train":
        samples = split["train"]
    else:
        if args.dataset == "vehicleid":
            samples = split["test"]
        else:  # VeRi's image_test usually holds the queries too: embed each file once (no self-pairs)
            names = {s.path.name for s in split["gallery"]}
            samples = split["gallery"] + [s for s in split["query"] if s.path.name not in names]
    entries = []
    for label, ckpt in zip(labels, args.checkpoint):
        model, size = load_model(ckpt)
        feats, pids, _ = ft.extract_features(model, eval_loader(samples, size, 64), desc=label)
        entries.append((label, feats, pids))
    if args.kind == "distances":
        out = plot_distance_distributions(entries, args.out)
    else:
        from ..reid.toymeta import load_toy_meta

        meta = load_toy_meta(args.root) if args.dataset == "veri776" else None
        views = [meta.views_for(samples)] * len(entries) if meta is not None else None
        out = plot_tsne(entries, args.out, max_ids=args.max_ids, seed=args.seed, views=views)
    print(f"wrote {out}")
    return 0
