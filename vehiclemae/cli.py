"""``vehiclemae``: pre-training, export, evaluation and plots.

Each command group lives in its own module under ``vehiclemae.commands`` and exposes ``register(subparsers)``;
heavy libraries are imported inside the handlers so that ``--help`` stays fast.
"""

from __future__ import annotations

import argparse

from data_manifests.cli import build_cli, run_cli
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
    return build_cli(
        "vehiclemae",
        "VehicleMAE pre-training (VMIM + PPMD) on DiffVERI manifests and vehicle Re-ID benchmarks.",
        COMMAND_MODULES,
    )


def main(argv: list[str] | None = None) -> int:
    apply_offline_env()
    return run_cli(build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
