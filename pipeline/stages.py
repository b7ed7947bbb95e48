"""The registry of pipeline stages, used by ``diffveri run STAGE`` and by the Prefect flow.

Each entry is ``"module:function"`` for a function
``run_stage(config: dict, root: Path, identities: list[str] | None) -> StageResult`` that reads its own config
section and calls the typed stage function. Entries are imported lazily.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STAGES: dict[str, str] = {
    "subjects": "pipeline.generate.subjects_stage:run_stage",
    "dreambooth": "pipeline.generate.dreambooth:run_stage",
    "synthesize": "pipeline.generate.synthesize:run_stage",
    "filter": "pipeline.filter.stage:run_stage",
    "review": "pipeline.review.stage:run_stage",
    "segment": "pipeline.segment.infer:run_stage",
    "assemble": "pipeline.assemble:run_stage",
}


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


def get_stage(name: str) -> StageFn:
    """The ``run_stage`` function of a stage, with an error listing the valid names."""
    try:
        target = STAGES[name]
    except KeyError:
        raise KeyError(f"unknown stage {name!r}; valid stages: {', '.join(STAGES) or 'none'}") from None
    module, function = target.split(":")
    return getattr(importlib.import_module(module), function)
