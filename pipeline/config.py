"""The pipeline profile as one typed dataclass of all its sections (``configs/pipeline/*.yaml``).

Loading is :func:`data_manifests.config.load_config` (defaults -> YAML profile -> ``--set`` overrides): the whole
profile is checked when it is loaded, so a misspelt section (``--set filtr.conf_min=0.9``) or key fails at once with
the nearest valid name. Stages never take the config object: each stage's ``run_stage`` adapter turns its section into
its typed dataclass with :func:`section` and calls the stage function with explicit keyword arguments.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from data_manifests.config import apply_overrides, section, to_dict
from data_manifests.config import load_config as _load

from .assemble import AssembleConfig
from .filter.stage import FilterConfig
from .generate.common import ModelsConfig
from .generate.dreambooth import DreamBoothConfig
from .generate.subjects_stage import SubjectsConfig
from .generate.synthesize import SynthesizeConfig
from .plan import PlanConfig
from .review.stage import ReviewConfig
from .segment.config import SegmentConfig

__all__ = ["PipelineConfig", "RuntimeConfig", "apply_overrides", "load_config", "section"]

TASK_RUNNERS = ("threads", "processes", "dask")


@dataclass
class RuntimeConfig:
    """The ``runtime:`` section: how ``flows`` runs the stages' shards (docs/flows.md)."""

    task_runner: str = "threads"  # threads | processes | dask
    max_workers: int | None = None
    dask_address: str | None = None  # tcp://host:8786 to use an existing Dask cluster
    dask_workers: int = 2  # local Dask cluster size when no address is given

    def __post_init__(self) -> None:
        if self.task_runner not in TASK_RUNNERS:
            raise ValueError(f"runtime.task_runner must be one of {TASK_RUNNERS}, got {self.task_runner!r}")


@dataclass
class PipelineConfig:
    """A whole pipeline profile: every section's own dataclass, plus the profile's name and default seed."""

    profile: str | None = None
    seed: int = 0  # the default seed of every section that sets none
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    subjects: SubjectsConfig = field(default_factory=SubjectsConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    dreambooth: DreamBoothConfig = field(default_factory=DreamBoothConfig)
    synthesize: SynthesizeConfig = field(default_factory=SynthesizeConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
    review: ReviewConfig = field(default_factory=ReviewConfig)
    segment: SegmentConfig = field(default_factory=SegmentConfig)
    assemble: AssembleConfig = field(default_factory=AssembleConfig)
    plan: PlanConfig = field(default_factory=PlanConfig)


def load_config(path: str | os.PathLike | None, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The profile ``path`` (a file, or ``toy`` / ``paper`` in configs/pipeline/; ``None``: the defaults) with
    ``overrides``, checked as a :class:`PipelineConfig` and returned resolved (every default filled in) as plain
    values for the stages."""
    return to_dict(_load(PipelineConfig, path, overrides, kind="pipeline"))
