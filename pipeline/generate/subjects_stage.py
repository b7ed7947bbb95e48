"""The ``subjects`` stage of the flow: fill the subjects table from the toy world or from real photos.

The same import as ``diffveri subjects import`` (all-or-nothing, photos copied under ``ROOT/subjects/``); the toy
world's identities keep their ``attributes`` (toy-world seed and index), so the ``toyworld`` synthesis backend can
render them again from any viewpoint.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import data_manifests as dm
from data_manifests import Source

from ..stages import StageResult
from .subjects import Candidate, from_folder, from_vehicleid, from_veri776, import_subjects


@dataclass
class SubjectsConfig:
    source: str = "toyworld"  # toyworld | folder | veri776 | vehicleid
    path: str = "world"  # the source's root; relative paths are relative to the data root
    per_identity: int | None = 4  # instance photos per identity (toyworld: its canonical views, all of them)
    limit: int | None = None  # import only the first N identities (sorted)
    class_name: str = "car"  # class of folder identities without subject.json
    seed: int = 0


def toyworld_candidates(world: Path, identities: list[str] | None = None) -> list[Candidate]:
    """The identities of a toy world written by ``diffveri toy world`` (its instance renders as photos)."""
    if not dm.table_exists(world, "subjects"):
        raise FileNotFoundError(
            f"{world} holds no toy world (no manifests/subjects); run `diffveri toy world --root {world}`"
        )
    rows = dm.read_rows(world, "subjects")
    if identities is not None:
        rows = [r for r in rows if r["identity_id"] in set(identities)]
    return [
        Candidate(
            identity_id=r["identity_id"],
            class_name=r["class_name"],
            source=Source.TOYWORLD,
            files=[world / p for p in r["instance_images"]],
            attributes=json.loads(r["attributes"] or "{}"),
        )
        for r in rows
    ]


def collect_candidates(root: Path, cfg: SubjectsConfig, identities: list[str] | None) -> list[Candidate]:
    source = Path(cfg.path) if Path(cfg.path).is_absolute() else root / cfg.path
    if cfg.source == "toyworld":
        found = toyworld_candidates(source, identities)
        return found[: cfg.limit] if cfg.limit else found
    if cfg.source == "folder":
        found = from_folder(source, cfg.class_name, cfg.per_identity, cfg.limit, cfg.seed)
    elif cfg.source == "veri776":
        found = from_veri776(source, cfg.per_identity or 4, cfg.limit, cfg.seed)
    elif cfg.source == "vehicleid":
        found = from_vehicleid(source, cfg.per_identity or 4, cfg.limit, cfg.seed)
    else:
        raise ValueError(f"subjects.source must be toyworld, folder, veri776 or vehicleid, got {cfg.source!r}")
    return [c for c in found if identities is None or c.identity_id in set(identities)]


def run_stage(config: dict[str, Any], root: Path, identities: list[str] | None = None) -> StageResult:
    """Stage adapter (``diffveri run subjects``): import what is not in the table yet."""
    from ..config import section

    cfg = section(config, "subjects", SubjectsConfig)
    candidates = collect_candidates(Path(root), cfg, identities)
    done = dm.existing_keys(root, "subjects")
    todo = [c for c in candidates if c.identity_id not in done]
    written = import_subjects(Path(root), todo) if todo else 0
    return StageResult("subjects", {"processed": written, "skipped": len(candidates) - len(todo)})
