"""``vehiclemae info --root ROOT``: what a data root offers for pre-training (the ``diffveri`` table)."""

from __future__ import annotations

import argparse

from data_manifests.cli import add_root


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("info", help="summarise the diffveri table of a data root")
    add_root(parser, "data root (holds manifests/)", positional_alias=True)
    parser.set_defaults(handler=_info)


def _info(args: argparse.Namespace) -> int:
    from data_manifests.stats import dataset_row

    for key, value in dataset_row(args.root).items():
        print(f"{key:>24}: {value}")
    return 0
