"""``diffveri``: the dataset-construction command line.

Each command group lives in its own module under ``pipeline.commands`` and exposes ``register(subparsers)``;
heavy libraries are imported inside the handlers so that ``--help`` stays fast. To add a command, write a module
with ``register`` and list it in ``COMMAND_MODULES``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from data_manifests.cli import check_args
from data_manifests.runtime import apply_offline_env

COMMAND_MODULES: tuple[str, ...] = (
    "pipeline.commands.manifests",
    "pipeline.commands.run",
    "pipeline.commands.generate",
    "pipeline.commands.review",
    "pipeline.commands.segment",
    "pipeline.commands.truth",
    "pipeline.commands.plan",
    "pipeline.commands.report",
    "pipeline.commands.toy",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diffveri",
        description="Build the DiffVERI multi-view vehicle Re-ID dataset: toy world, subjects, DreamBooth, "
        "multi-view synthesis, YOLO filtering, review, SAM view segmentation, assembly.",
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
    # User errors and missing, unwritable or full disks (OSError): one clear line, no traceback.
    except (ValueError, KeyError, OSError) as exc:
        if args.verbose:
            raise
        print(f"diffveri {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
