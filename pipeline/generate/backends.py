"""Synthesis backends behind one small interface, chosen by name in :data:`BACKENDS`.

- ``diffusion``: the real one. A diffusers ``StableDiffusionPipeline`` from a local folder, each identity's
  DreamBooth adapter applied while its images are drawn; one ``torch.Generator`` per image so an image depends
  only on its own seed.
- ``toyworld``: renders the subject's procedural toy vehicle at a camera drawn for the requested view with
  :mod:`pipeline.toyworld`. These images are *rendered, not diffused*; the renderer's exact per-pixel view labels
  come with each image (written to ``segments_gt`` by the stage).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from data_manifests import VIEW_CLASSES_TOYWORLD
from data_manifests.seeds import rng

from .common import MODEL_LOCK, model_sha256

logger = logging.getLogger(__name__)

TOYWORLD_REF = "toyworld:v1"


@dataclass(frozen=True)
class Request:
    """One image to make. ``seed`` alone determines the image (given backend, identity and settings)."""

    identity_id: str
    view: str
    index: int
    seed: int
    prompt: str
    negative_prompt: str


@dataclass
class Output:
    """``image``: uint8 ``(H, W, 3)``. ``labels``: exact view labels ``(H, W)`` into ``VIEW_CLASSES_TOYWORLD``
    (toyworld only) and ``bbox`` ``(x1, y1, x2, y2)`` of the vehicle."""

    image: np.ndarray
    labels: np.ndarray | None = None
    bbox: tuple[float, float, float, float] | None = None


class Backend(Protocol):
    name: str
    model_ref: str  # part of every image_id: which backend (and base model) made the image
    needs_adapter: bool  # True: identities without an ok DreamBooth adapter cannot be synthesized

    def settings(self) -> dict[str, Any]:
        """Provenance columns of the ``generations`` row: steps, guidance, scheduler, width, height."""
        ...

    def start_identity(self, subject: dict[str, Any], adapter: Path | None) -> None: ...

    def generate(self, requests: list[Request]) -> list[Output]: ...

    def end_identity(self) -> None: ...


# ----------------------------------------------------------------------------------------------------- diffusion
def scheduler_classes() -> dict[str, Any]:
    from diffusers import (
        DDIMScheduler,
        DDPMScheduler,
        DPMSolverMultistepScheduler,
        EulerAncestralDiscreteScheduler,
        EulerDiscreteScheduler,
        PNDMScheduler,
    )

    return {
        "ddim": DDIMScheduler,
        "ddpm": DDPMScheduler,
        "dpmpp_2m": DPMSolverMultistepScheduler,
        "euler": EulerDiscreteScheduler,
        "euler_a": EulerAncestralDiscreteScheduler,
        "pndm": PNDMScheduler,
    }


class DiffusionBackend:
    """Stable Diffusion (any local diffusers folder) with per-identity DreamBooth adapters."""

    name = "diffusion"
    needs_adapter = True

    def __init__(
        self,
        *,
        base_model: Path,
        scheduler: str,
        steps: int,
        guidance: float,
        width: int,
        height: int,
        device: str = "auto",
        dtype: str = "float32",
    ) -> None:
        import torch
        from diffusers import StableDiffusionPipeline

        classes = scheduler_classes()
        if scheduler not in classes:
            raise KeyError(f"unknown scheduler {scheduler!r}; valid: {sorted(classes)}")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        torch_dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
        with MODEL_LOCK:  # see common.MODEL_LOCK
            self.pipe = StableDiffusionPipeline.from_pretrained(
                base_model, local_files_only=True, safety_checker=None, dtype=torch_dtype
            ).to(device)
        self.pipe.scheduler = classes[scheduler].from_config(self.pipe.scheduler.config)
        self.pipe.set_progress_bar_config(disable=True)
        self.device = device
        self.scheduler, self.steps, self.guidance, self.width, self.height = scheduler, steps, guidance, width, height
        self.model_ref = f"diffusion:{base_model.name}@{model_sha256(base_model)[:12]}"
        self._remove_adapter: Callable[[], None] | None = None

    def settings(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "guidance": self.guidance,
            "scheduler": self.scheduler,
            "width": self.width,
            "height": self.height,
        }

    def start_identity(self, subject: dict[str, Any], adapter: Path | None) -> None:
        from .dreambooth import load_adapter

        self.end_identity()
        if adapter is not None:
            # A name per identity: if an earlier identity's adapter could not be removed cleanly, it stays
            # inactive instead of blocking every later identity with a name clash.
            name = "id_" + re.sub(r"\W", "_", str(subject["identity_id"]))
            self._remove_adapter = load_adapter(self.pipe, adapter, adapter_name=name)

    def generate(self, requests: list[Request]) -> list[Output]:
        import torch

        # A CPU generator per image: the same seed gives the same initial latents on any device and batch.
        generators = [torch.Generator().manual_seed(r.seed) for r in requests]
        with torch.no_grad():
            images = self.pipe(
                [r.prompt for r in requests],
                negative_prompt=[r.negative_prompt for r in requests],
                num_inference_steps=self.steps,
                guidance_scale=self.guidance,
                width=self.width,
                height=self.height,
                generator=generators,
                output_type="np",
            ).images
        return [Output(image=(np.clip(im, 0, 1) * 255).round().astype(np.uint8)) for im in images]

    def end_identity(self) -> None:
        if self._remove_adapter is not None:
            self._remove_adapter()
            self._remove_adapter = None


# ------------------------------------------------------------------------------------------------------ toyworld
class ToyworldBackend:
    """Renders the subject's toy identity (rebuilt from ``subjects.attributes``) at the requested view."""

    name = "toyworld"
    needs_adapter = False
    model_ref = TOYWORLD_REF

    def __init__(self, *, size: int, background: bool = True, occluders: bool = False) -> None:
        self.size, self.background, self.occluders = size, background, occluders
        self._ident = None

    def settings(self) -> dict[str, Any]:
        return {"steps": None, "guidance": None, "scheduler": None, "width": self.size, "height": self.size}

    def start_identity(self, subject: dict[str, Any], adapter: Path | None) -> None:
        from pipeline.toyworld import identity_from_attributes

        self._ident = identity_from_attributes(json.loads(subject.get("attributes") or "{}"))

    def generate(self, requests: list[Request]) -> list[Output]:
        from pipeline.toyworld import render, view_to_camera

        if self._ident is None:
            raise RuntimeError("start_identity must be called before generate")
        outputs = []
        for r in requests:
            # The camera draw and the render jitter both come from the request's seed.
            azimuth, elevation = view_to_camera(r.view, rng(r.seed, "generate.camera"))
            result = render(
                self._ident,
                azimuth=azimuth,
                elevation=elevation,
                size=self.size,
                seed=r.seed,
                background=self.background,
                occluders=self.occluders,
            )
            outputs.append(Output(image=result.image, labels=result.labels, bbox=tuple(result.bbox)))
        return outputs

    def end_identity(self) -> None:
        self._ident = None


def groundtruth_row(image_id: str, labels: np.ndarray, bbox: tuple[float, float, float, float] | None) -> dict:
    """A ``segments_gt`` row from an exact label map ``(H, W)`` into ``VIEW_CLASSES_TOYWORLD``.

    Same layout as the ``segments`` rows the segmenter writes: ``view_classes`` lists every class including the
    background, ``view_fractions`` are shares of vehicle pixels. An image whose vehicle is entirely hidden gets a
    ``rejected`` / ``empty_mask`` row.
    """
    from pipeline.toyworld.rendering import segment_row

    return segment_row(image_id, labels, bbox, VIEW_CLASSES_TOYWORLD)


BACKENDS: tuple[str, ...] = ("diffusion", "toyworld")
