"""Loading ``torch.save`` files without running code from them.

``torch.load(weights_only=True)`` rebuilds tensors, containers and plain Python values only; any other class or
function a file names is refused before anything is called, so a crafted pickle (a ``__reduce__`` payload) cannot
run. ``allow`` adds exact globals (``torch.serialization.safe_globals``) for files that need a few more types.
Every failure becomes one ``ValueError`` naming the file, which the CLI prints as a one-line message.

It lives here because both sides load torch files and import only this package in common (``pipeline`` and
``vehiclemae`` never import each other); torch is imported when a file is loaded, not with the package.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

_NAMED = re.compile(r"GLOBAL ([\w.]+)|but got <class '([\w.]+)'>")


def _refusal_reason(exc: pickle.UnpicklingError) -> str:
    """What the weights-only unpickler objected to, in a few words (its own message is a paragraph)."""
    message = str(exc)
    found = _NAMED.search(message)
    if found:
        return f"it references {found.group(1) or found.group(2)}, which safe (weights-only) loading does not allow"
    if "Unsupported operand" in message:
        return "it is not a torch.save file (it holds pickle instructions torch.save never writes)"
    detail = " ".join(message.partition("WeightsUnpickler error:")[2].partition("Check the documentation")[0].split())
    return "safe (weights-only) loading refused it" + (f" ({detail[:200]})" if detail else "")


def describe_error(exc: Exception) -> str:
    """``Type: first sentence`` of an exception, for one-line errors."""
    first = " ".join(str(exc).split()).split(". ")[0][:160]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


_LOAD_LOCK = threading.Lock()


def load_torch_file(
    path: str | os.PathLike,
    *,
    data: bytes | None = None,
    map_location: str | torch.device = "cpu",
    allow: Sequence[Any] = (),
    fix: str = "load only files written by this project",
) -> Any:
    """``torch.load(path, weights_only=True)`` with ``allow`` as the only extra globals.

    Args:
        path: the file (named in errors).
        data: its bytes, when the caller has already read them (then ``path`` is not read again).
        allow: exact extra globals, as accepted by ``torch.serialization.safe_globals``.
        fix: what the user should do, appended to the error.
    Raises:
        ValueError: the file was refused (it names a class or function outside the allow-list: nothing in it ran)
            or is not a readable ``torch.save`` file (empty, truncated, garbage).
    """
    import torch

    # A missing or unreadable file fails at open(), with the OS's message.
    with io.BytesIO(data) if data is not None else open(path, "rb") as handle:
        try:
            # torch keeps the allowed globals in one process-wide set that each context removes on exit: a load in
            # another thread (the flow runs shards on threads) would lose its entries mid-load. One load at a time.
            with _LOAD_LOCK, torch.serialization.safe_globals(list(allow)):
                return torch.load(handle, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as exc:
            raise ValueError(
                f"{path} is not a safe checkpoint: {_refusal_reason(exc)}; it was refused and nothing in it was run "
                f"({fix})"
            ) from exc
        except Exception as exc:  # noqa: BLE001 - damaged files raise RuntimeError, OSError, EOFError, KeyError...
            reason = describe_error(exc)
            raise ValueError(
                f"{path} is not a readable checkpoint (empty, truncated or not written by torch.save: {reason}); {fix}"
            ) from exc
