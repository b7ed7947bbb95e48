"""The detector interface of the filter stage and its ultralytics implementation.

A detector turns a batch of RGB images into one ``(N, 6)`` box array per image (``[x1, y1, x2, y2, conf, cls]`` in
pixels of that image), the layout of ``ultralytics.engine.results.Results.boxes.data``. Other backends implement
the same :class:`Detector` protocol and are picked by name in :func:`build_detector`.

Weights are loaded safely (:func:`load_yolo`): ultralytics unpickles ``.pt`` files with ``weights_only=False``, so a
crafted file would run code. We read the file once, load those bytes with ``torch.load(weights_only=True)`` against
an allow-list of YOLO model layers, and hand ultralytics a private copy of the very bytes that passed.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import logging
import os
import re
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from .rules import boxes_from_results

if TYPE_CHECKING:
    from ultralytics import YOLO

log = logging.getLogger(__name__)


@runtime_checkable
class Detector(Protocol):
    """What the filter stage needs from a detector."""

    @property
    def ref(self) -> str:
        """Provenance recorded in ``detections.detector_ref`` (backend, weights file and its hash)."""
        ...

    @property
    def names(self) -> dict[int, str]:
        """Class id -> class name."""
        ...

    def predict(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Detect vehicles in one batch.

        Args:
            images: RGB ``uint8`` arrays ``(H_i, W_i, 3)``; sizes may differ.
        Returns:
            one ``(N_i, 6)`` float array per image.
        """
        ...


# A YOLO checkpoint pickles its model whole: these are the modules whose nn.Module classes it may name.
_LAYER_MODULES = ("torch.nn.modules.", "ultralytics.nn.modules.")
_MODEL_MODULE = "ultralytics.nn.tasks"  # DetectionModel & co.
_WEIGHTS_FIX = "use weights written by ultralytics training or YOLO.save (model layers, tensors and plain values only)"


def _data_globals() -> dict[str, Any]:
    """The non-layer globals of released ultralytics checkpoints: numpy float64 scalars (metrics), exactly.

    (Ultralytics' own opt-in safe loader lists the same; checkpoints written by this ultralytics need none.)
    """
    scalar = np.float64(0).__reduce__()[0]
    return {"numpy.core.multiarray.scalar": scalar, "numpy._core.multiarray.scalar": scalar, "numpy.dtype": np.dtype}


def _layer_class(name: str) -> type | None:
    """The class ``name`` refers to if it is a model layer (an nn.Module class of torch.nn or ultralytics.nn)."""
    import torch

    module, _, attr = name.rpartition(".")
    if not (module.startswith(_LAYER_MODULES) or module == _MODEL_MODULE):
        return None
    try:
        obj = getattr(importlib.import_module(module), attr, None)
    except (ImportError, ValueError):
        return None
    is_layer = isinstance(obj, type) and issubclass(obj, torch.nn.Module)
    return obj if is_layer and obj.__module__ == module and obj.__qualname__ == attr else None


def check_yolo_checkpoint(path: str | os.PathLike, data: bytes) -> None:
    """Load ``data`` (the bytes of the weights file ``path``) weights-only; raise ``ValueError`` unless it is a plain
    YOLO checkpoint: a dict with a model made of torch/ultralytics layers, tensors and plain values.

    Every global the pickle names must be a model layer (:func:`_layer_class`) or one of :func:`_data_globals`; a
    ``__reduce__`` payload names a function and is refused before anything in the file runs.
    """
    import torch

    from data_manifests.safe_load import describe_error, load_torch_file

    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - empty, truncated or not a torch.save archive
        raise ValueError(
            f"{path} is not a readable YOLO checkpoint (empty, truncated or not a torch.save archive: "
            f"{describe_error(exc)}); {_WEIGHTS_FIX}"
        ) from exc
    known = _data_globals()
    allow, refused = [], []
    for name in names:
        obj = known.get(name) or _layer_class(name)
        if obj is None:
            refused.append(name)
        else:
            allow.append((obj, name))
    if refused:
        raise ValueError(
            f"{path} is not a safe YOLO checkpoint: it references {', '.join(sorted(refused))}, "
            f"{'which is not a YOLO model layer' if len(refused) == 1 else 'which are not YOLO model layers'}; "
            f"it was refused and nothing in it was run ({_WEIGHTS_FIX})"
        )
    if "numpy.dtype" in names:
        allow.append(type(np.dtype(np.float64)))  # the dtype's own class, built by numpy.dtype (not in the scan)
    ckpt = load_torch_file(path, data=data, allow=allow, fix=_WEIGHTS_FIX)
    models = [ckpt.get(k) for k in ("ema", "model")] if isinstance(ckpt, dict) else []
    if not any(isinstance(m, torch.nn.Module) for m in models):
        raise ValueError(f"{path} is not a YOLO checkpoint: it holds no model ({_WEIGHTS_FIX})")


def bundled_model_yaml(name: str) -> str:
    """``name`` if ultralytics resolves it to a model definition it bundles (``yolo11n.yaml``), else ``ValueError``.

    A model yaml is code to ultralytics (its ``activation`` entry is ``eval``'d), so only bundled ones are accepted:
    a bare name, resolved the way ultralytics resolves it (a file of that name, or of the scale-less name
    ``yolo11.yaml``, in the working directory comes first) to a file under ultralytics' ``cfg/models``.
    """
    from ultralytics.utils import ROOT
    from ultralytics.utils.checks import check_yaml

    bundled = (ROOT / "cfg" / "models").resolve()
    unified = re.sub(r"(\d+)([nslmx])(.+)?$", r"\1\3", name)  # yolo11n.yaml -> yolo11.yaml, as ultralytics does
    resolved = (check_yaml(name, hard=False) or check_yaml(unified, hard=False)) if Path(name).name == name else None
    if not resolved:
        raise ValueError(
            f"detector model {name!r}: a model yaml must be the name of one bundled with ultralytics "
            "(e.g. yolo11n.yaml; random weights); for trained weights pass a local .pt file"
        )
    if not Path(resolved).resolve().is_relative_to(bundled):
        raise ValueError(
            f"detector model {name!r}: ultralytics would read {Path(resolved).resolve()} instead of its bundled "
            "definition; move that file away or run from another directory"
        )
    return name


_LOAD_LOCK = threading.Lock()


def load_yolo(weights: str | os.PathLike) -> tuple[YOLO, str]:
    """A YOLO detection model and the digest of what was loaded: a local ``.pt`` (checked by
    :func:`check_yolo_checkpoint`; the first 12 hex digits of its sha256) or a bundled model yaml (``"random"``).
    """
    from ultralytics import YOLO

    weights = str(weights)
    if weights.endswith((".yaml", ".yml")):  # a bundled model yaml such as "yolo11n.yaml": random weights, offline
        return YOLO(bundled_model_yaml(weights), task="detect"), "random"
    path = Path(weights)
    if path.suffix != ".pt":
        raise ValueError(f"detector weights {weights}: expected a local .pt file or a bundled model yaml")
    if not path.is_file():
        raise FileNotFoundError(
            f"detector weights {weights} not found; set filter.weights to a local .pt file "
            "(toy profile: run `diffveri toy detector --root ROOT` first)"
        )
    # Read once; check and load those same bytes, so the file cannot be swapped between the check and the load.
    data = path.read_bytes()
    # One load at a time: the allow-list imports ultralytics' modules, and a thread importing them while another one
    # does sees them half-initialised (the flow's shards build their detectors concurrently on threads).
    with _LOAD_LOCK, tempfile.TemporaryDirectory(prefix="diffveri-yolo-") as tmp:
        check_yolo_checkpoint(path, data)
        private = Path(tmp) / path.name
        private.write_bytes(data)
        # Ultralytics unpickles with weights_only=False, but these bytes just passed the weights-only load: the
        # full unpickler meets the same allow-listed globals and instructions, so it builds the same objects.
        model = YOLO(str(private), task="detect")
    return model, hashlib.sha256(data).hexdigest()[:12]


class UltralyticsDetector:
    """A YOLO model loaded safely (:func:`load_yolo`) from a local weights file (``.pt``) or a bundled model yaml
    (random weights, for tests)."""

    def __init__(
        self,
        weights: str | os.PathLike,
        *,
        imgsz: int = 640,
        conf: float = 0.25,
        iou: float = 0.7,
        device: str = "cpu",
        agnostic_nms: bool = True,
        half: bool = False,
    ) -> None:
        self.model, digest = load_yolo(weights)
        self._ref = f"ultralytics:{Path(weights).name}@{digest}"
        # Agnostic NMS: a car box and a truck box on the same vehicle must not count as two vehicles.
        self._kwargs = dict(
            imgsz=imgsz, conf=conf, iou=iou, device=device, agnostic_nms=agnostic_nms, half=half, verbose=False
        )

    @property
    def ref(self) -> str:
        return self._ref

    @property
    def names(self) -> dict[int, str]:
        return dict(self.model.names)

    def predict(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        if not images:
            return []
        # Ultralytics treats numpy arrays as BGR (OpenCV order); ours are RGB.
        bgr = [np.ascontiguousarray(im[..., ::-1]) for im in images]
        # A list of arrays is one batch for ultralytics; stream=True yields Results lazily instead of keeping them.
        results = self.model.predict(bgr, stream=True, batch=len(bgr), **self._kwargs)
        return [boxes_from_results(r) for r in results]


DETECTORS = ("ultralytics",)


def build_detector(backend: str, weights: str | os.PathLike, **kwargs: object) -> Detector:
    """A detector by backend name, with an error listing the valid names."""
    if backend == "ultralytics":
        return UltralyticsDetector(weights, **kwargs)  # type: ignore[arg-type]
    raise KeyError(f"unknown detector backend {backend!r}; valid backends: {', '.join(DETECTORS)}")
