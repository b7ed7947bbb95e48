from __future__ import annotations

import pytest


@pytest.fixture(scope="package")
def prefect_harness():
    """A temporary Prefect server and database for the whole session (starting one costs seconds)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield
