"""``vehiclemae``: pre-training, export, evaluation and plots.

Each command group lives in its own module under ``vehiclemae.commands`` and exposes ``register(subparsers)``;
heavy libraries are imported inside the handlers so that ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from data_manifests.cli import check_args
from data_manifests.runtime import apply_offline_env

COMMAND_MODULES: tuple[str, ...] = (
    "vehiclemae.commands.info",
    "vehiclemae.commands.train",
    "vehiclemae.commands.export",
    "vehiclemae.commands.export_reid",
    "vehiclemae.commands.viz",
    "vehiclemae.commands.finetune",
    "vehiclemae.commands.eval",
    "vehiclemae.commands.plot",
    "vehiclemae.commands.probe",
    "vehiclemae.commands.baselines",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vehiclemae",
        description="VehicleMAE pre-training (VMIM + PPMD) on DiffVERI manifests and vehicle Re-ID benchmarks.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    apply_offline_env()
    parser = build_parser()
    args = parser.parse_args(argv)
    check_args(args)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args.handler(args) or 0)
    # Expected failures are one line and exit code 2: bad input (ValueError, KeyError), missing or unwritable files
    # and a full disk (OSError), a diverged training (NonFiniteLossError is a FloatingPointError).
    except (ValueError, KeyError, OSError, FloatingPointError) as exc:
        if args.verbose:
            raise
        print(f"vehiclemae {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
