"""Layered run configuration (typed dataclass defaults -> YAML experiment file -> ``--set key=value`` overrides),
loaded by :mod:`data_manifests.config`; experiment files are found by short name in ``configs/vehiclemae/``.

The resolved config is saved in the run folder together with the git SHA (:func:`save_run_config`), so every run
can be reproduced. Models and training loops never take the config object: the CLI turns it into keyword
arguments at one boundary.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TypeVar

from data_manifests.config import apply_overrides, git_sha, parse_names, save_run_config, to_dict
from data_manifests.config import load_config as _load

__all__ = ["apply_overrides", "git_sha", "load_config", "parse_names", "save_run_config", "to_dict"]

T = TypeVar("T")


def load_config(cls: type[T], path: str | os.PathLike | None, overrides: Sequence[str] = ()) -> T:
    """Defaults of ``cls`` <- YAML file ``path`` (optional; a file or a name in configs/vehiclemae/) <- overrides."""
    return _load(cls, path, overrides, kind="vehiclemae")
