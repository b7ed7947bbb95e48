"""Test-wide set-up: the offline environment (state under a temporary folder) and small threads."""

from __future__ import annotations

import os
import tempfile

from data_manifests.runtime import apply_offline_env

apply_offline_env(os.environ.get("DIFFVERI_STATE") or tempfile.mkdtemp(prefix="diffveri-test-state-"))
os.environ.setdefault("OMP_NUM_THREADS", "2")
