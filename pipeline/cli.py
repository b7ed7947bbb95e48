"""``diffveri``: the dataset-construction command line.

Each command group lives in its own module under ``pipeline.commands`` and exposes ``register(subparsers)``;
heavy libraries are imported inside the handlers so that ``--help`` stays fast. To add a command, write a module
with ``register`` and list it in ``COMMAND_MODULES``.
"""

from __future__ import annotations

import argparse

from data_manifests.cli import build_cli, run_cli
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
    return build_cli(
        "diffveri",
        "Build the DiffVERI multi-view vehicle Re-ID dataset: toy world, subjects, DreamBooth, "
        "multi-view synthesis, YOLO filtering, review, SAM view segmentation, assembly.",
        COMMAND_MODULES,
    )


def main(argv: list[str] | None = None) -> int:
    apply_offline_env()
    return run_cli(build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
