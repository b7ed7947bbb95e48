"""The flow runs stage shards in threads; the model libraries' lazy imports must not race there."""

from __future__ import annotations

import subprocess
import sys


def test_concurrent_first_imports_in_threads() -> None:
    # A fresh interpreter, so the lazy modules are really imported for the first time, by 4 threads at once.
    code = """
import threading
from pipeline.generate.common import import_model_libraries
errors = []
def work():
    try:
        import_model_libraries()
        from diffusers import StableDiffusionPipeline, UNet2DConditionModel  # noqa: F401
    except Exception as exc:  # noqa: BLE001
        errors.append(repr(exc))
threads = [threading.Thread(target=work) for _ in range(4)]
[t.start() for t in threads]
[t.join() for t in threads]
assert not errors, errors
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
