"""The stage registry: every stage names its run_stage and the manifest tables it reads and writes."""

from __future__ import annotations

import pytest

import data_manifests as dm
from pipeline.stages import STAGES, get_stage, stage_spec


@pytest.mark.parametrize("name", list(STAGES))
def test_stage_declares_real_tables(name: str) -> None:
    spec = stage_spec(name)
    assert spec.outputs and set(spec.inputs + spec.outputs) <= set(dm.TABLES)
    assert callable(get_stage(name))


def test_every_input_is_written_by_an_earlier_stage() -> None:
    written: set[str] = set()
    for spec in STAGES.values():
        assert set(spec.inputs) <= written, spec
        written |= set(spec.outputs)


def test_unknown_stage_lists_the_valid_names() -> None:
    with pytest.raises(KeyError, match="valid stages: subjects, dreambooth"):
        stage_spec("segmnt")
