"""The registry of pipeline stages, used by ``diffveri run STAGE`` and by the Prefect flow.

Each entry names a function ``run_stage(config: dict, root: Path, identities: list[str] | None) -> StageResult``
(``"module:function"``, imported lazily) that reads its own config section and calls the typed stage function,
and declares the manifest tables the stage reads and writes. Entries are in pipeline order.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class StageResult:
    """What a stage run did: counts by outcome (``processed``, ``skipped``, ``failed`` ...) and a one-line summary."""

    stage: str
    counts: dict[str, int] = field(default_factory=dict)
    message: str = ""

    def __str__(self) -> str:
        counts = ", ".join(f"{k}={v}" for k, v in self.counts.items())
        return f"{self.stage}: {counts}" + (f" — {self.message}" if self.message else "")


StageFn = Callable[[dict[str, Any], Path, "list[str] | None"], StageResult]


@dataclass(frozen=True)
class Stage:
    """A registered stage: where its ``run_stage`` lives, the manifest tables it reads (``inputs``: a change in any
    of them changes what it would do) and writes (``outputs``), and whether its work splits by identity."""

    target: str
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    by_identity: bool = False


STAGES: dict[str, Stage] = {
    "subjects": Stage("pipeline.generate.subjects_stage:run_stage", outputs=("subjects",)),
    "dreambooth": Stage(
        "pipeline.generate.dreambooth:run_stage", inputs=("subjects",), outputs=("dreambooth",), by_identity=True
    ),
    "synthesize": Stage(
        "pipeline.generate.synthesize:run_stage",
        inputs=("subjects", "dreambooth"),
        outputs=("generations",),
        by_identity=True,
    ),
    "filter": Stage(
        "pipeline.filter.stage:run_stage", inputs=("generations",), outputs=("detections",), by_identity=True
    ),
    "review": Stage("pipeline.review.stage:run_stage", inputs=("detections",), outputs=("reviews",)),
    "segment": Stage(
        "pipeline.segment.infer:run_stage", inputs=("detections", "reviews"), outputs=("segments",), by_identity=True
    ),
    "assemble": Stage(
        "pipeline.assemble:run_stage",
        inputs=("generations", "detections", "reviews", "segments"),
        outputs=("diffveri",),
    ),
}


def get_stage(name: str) -> StageFn:
    """The ``run_stage`` function of a stage, with an error listing the valid names."""
    module, function = stage_spec(name).target.split(":")
    return getattr(importlib.import_module(module), function)


def stage_spec(name: str) -> Stage:
    """The registry entry of a stage, with an error listing the valid names."""
    try:
        return STAGES[name]
    except KeyError:
        raise KeyError(f"unknown stage {name!r}; valid stages: {', '.join(STAGES) or 'none'}") from None
