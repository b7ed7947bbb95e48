"""``diffveri plan``: what a build of N images needs, per stage — identities, images, GPU-hours, annotator-hours,
storage — from the profile's own settings (views, images per view, sampler steps ...) and its ``plan:`` section.

Everything is arithmetic on the config (docs/scale.md derives every figure):

* **Images.** An identity yields ``P = sum(images_per_view x views)`` generations over the diffusion plan; each stage
  keeps a share (``plan.yields``); the subject photos add ``subjects.per_identity`` real images when
  ``assemble.include_real``. Identities = ceil(N / images per identity).
* **GPU-hours.** Work is counted in FLOPs (``plan.flops``: per-unit figures counted on the real architectures by
  ``benchmarks/bench_plan_costs.py``) and divided by the achieved throughput ``plan.gpu.tflops`` — calibrated from a
  published end-to-end Stable Diffusion 1.5 timing on the same GPU, so it includes real-world utilisation.
* **Annotator-hours.** Review: kept images x the share a person sees (from ``review.mode``/``policy``/
  ``audit_rate``) x ``plan.seconds_per_review``; view masks for the segmenter: ``plan.mask_images`` x
  ``plan.seconds_per_mask_image``.
* **Storage.** Files per stage x ``plan.bytes``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from data_manifests.config import section


@dataclass
class Yields:
    """Share of a stage's input that comes out ``ok`` (estimates; replace them with your pilot run's figures)."""

    synthesize: float = 0.99  # generations written (failures: NaN images, out-of-memory)
    filter: float = 0.75  # kept by the YOLO filter (one whole, large vehicle)
    review: float = 0.9  # accepted (people and automatic consistency checks)
    segment: float = 0.99  # an ok view segmentation


@dataclass
class Gpu:
    name: str = "A100-80GB-SXM"
    tflops: float = 51.6  # achieved TFLOP/s (not peak): see docs/scale.md for the calibration


@dataclass
class Flops:
    """FLOPs per unit of work (one forward pass unless stated); ``benchmarks/bench_plan_costs.py`` counts them."""

    unet_forward: float = 8.033e11  # SD 1.5 UNet, 64x64 latent (512 px), batch 1
    vae_decode: float = 2.515e12  # SD VAE decoder, 512 px
    vae_encode: float = 1.117e12  # SD VAE encoder, 512 px
    detector: float = 1.953e11  # YOLO11x at 640 px
    segmenter: float = 9.757e11  # SAM ViT-B: image encoder at 1024 px + prompt encoder + decoder
    consistency: float = 3.513e10  # CLIP ViT-B/16 vision tower at 224 px
    pretrain_image: float = 1.32e11  # one VehicleMAE ViT-B/16 training image (students fwd+bwd, teachers fwd)
    train_factor: float = 3.0  # a training step costs about 3 forward passes (forward + backward)


@dataclass
class Bytes:
    """Bytes per stored item."""

    photo: float = 300_000  # a subject photo
    generation: float = 420_000  # a 512x512 PNG generation
    crop: float = 60_000  # a vehicle crop (filter crop or assembled crop; jpg ~496x485)
    lora: float = 12_800_000  # a rank-32 LoRA of the SD 1.5 UNet attention (6.4 M parameters, fp16)
    manifest_row: float = 1_500  # one manifest row (Parquet, RLE masks included), per table


@dataclass
class PlanConfig:
    """The ``plan:`` section."""

    yields: Yields = field(default_factory=Yields)
    gpu: Gpu = field(default_factory=Gpu)
    flops: Flops = field(default_factory=Flops)
    bytes: Bytes = field(default_factory=Bytes)
    classes: int = 1  # vehicle classes: prior-preservation class images are generated once per class
    review_share: float | None = None  # share of kept images inside the uncertain bands (uncertain policy)
    review_share_measured: float | None = None  # the share a person decided on a pilot run (plan --root): used as is
    seconds_per_review: float = 3.0  # one accept/reject + view label decision
    mask_images: int = 3000  # images annotated with view masks for fine-tuning the segmenter
    seconds_per_mask_image: float = 200.0  # drawing (correcting) the face polygons of one image
    dreambooth_overhead_seconds: float = 30.0  # per identity: loading the base model, saving the LoRA (GPU held)
    pretrain_epochs: int = 400  # VehicleMAE epochs over the assembled dataset (configs/vehiclemae/paper.yaml)
    real_per_identity: int = 4  # subject photos per identity when subjects.per_identity is null


@dataclass
class StageEstimate:
    stage: str
    identities: int
    images_in: float
    images_out: float
    gpu_hours: float
    annotator_hours: float
    storage_bytes: float
    note: str = ""


@dataclass
class Plan:
    images: int  # the target
    identities: int
    per_identity: dict[str, float]
    stages: list[StageEstimate]
    assumptions: dict[str, Any]

    def totals(self) -> dict[str, float]:
        return {
            "gpu_hours": sum(s.gpu_hours for s in self.stages),
            "annotator_hours": sum(s.annotator_hours for s in self.stages),
            "storage_bytes": sum(s.storage_bytes for s in self.stages),
        }

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "totals": self.totals()}


def generations_per_identity(synth: dict[str, Any]) -> tuple[float, float]:
    """``(all, diffusion)`` generations per identity: ``images_per_view x views`` summed over the plan entries."""
    views = synth.get("views") or []
    total = diffusion = 0.0
    for entry in synth.get("plan") or []:
        n = float(entry.get("images_per_view", 1)) * len(entry.get("views") or views)
        total += n
        if entry.get("backend", "diffusion") == "diffusion":
            diffusion += n
    if total <= 0:
        raise ValueError("synthesize.plan yields no image per identity: give each entry images_per_view and views")
    return total, diffusion


def review_share(
    review: dict[str, Any], band_share: float | None, kept: float, measured: float | None = None
) -> tuple[float, str]:
    """Share of kept images a person sees, and how it was derived."""
    if measured is not None:
        return measured, "measured on the pilot run"
    mode, policy = review.get("mode", "auto"), str(review.get("policy", "all"))
    audit = float(review.get("audit_rate") or 0.0)
    if mode == "auto":
        return 0.0, "review.mode auto: no person"
    if policy == "all":
        return 1.0, "review.policy all"
    if policy.startswith("random:"):
        return float(policy.split(":", 1)[1]), f"review.policy {policy}"
    if policy.startswith("first:"):
        return min(1.0, float(policy.split(":", 1)[1]) / max(kept, 1.0)), f"review.policy {policy}"
    if band_share is None:
        raise ValueError(
            f"review.policy {policy!r}: set plan.review_share to the share of kept images expected inside the "
            "uncertain bands (measure it on a pilot run: diffveri review status)"
        )
    share = band_share + (1.0 - band_share) * audit
    return share, f"review.policy {policy}: band {band_share:g} + audit {audit:g} of the rest"


def _gpu_hours(flops: float, gpu: Gpu) -> float:
    return flops / (gpu.tflops * 1e12) / 3600.0


def make_plan(config: dict[str, Any], images: int) -> Plan:
    """The plan for ``images`` final images under ``config`` (a loaded pipeline profile)."""
    if images <= 0:
        raise ValueError(f"--images must be positive, got {images}")
    p = section(config, "plan", PlanConfig)
    y, f, b, gpu = p.yields, p.flops, p.bytes, p.gpu
    synth, db = config.get("synthesize") or {}, config.get("dreambooth") or {}
    review, seg = config.get("review") or {}, config.get("segment") or {}
    assemble = config.get("assemble") or {}
    # 1. Images per identity, identities needed.
    per_id, diffusion_per_id = generations_per_identity(synth)
    synthetic_per_id = per_id * y.synthesize * y.filter * y.review * y.segment
    photos = (config.get("subjects") or {}).get("per_identity") or p.real_per_identity
    real_per_id = photos if assemble.get("include_real", True) else 0
    identities = math.ceil(images / (synthetic_per_id + real_per_id))
    generated = identities * per_id
    ok = generated * y.synthesize
    kept = ok * y.filter
    accepted = kept * y.review
    segmented = accepted * y.segment
    # 2. GPU work in FLOPs per stage.
    cfg_passes = 2 if float(synth.get("guidance", 7.5)) > 1 else 1  # classifier-free guidance doubles the UNet
    sample = float(synth.get("steps", 30)) * cfg_passes * f.unet_forward + f.vae_decode
    per_step = (1 + (1 if db.get("prior_preservation", True) else 0)) * float(db.get("batch_size", 1))
    per_step *= float(db.get("gradient_accumulation", 1))
    train_step = per_step * (f.train_factor * f.unet_forward + f.vae_encode)
    class_images = p.classes * float(db.get("num_class_images", 0)) if db.get("prior_preservation", True) else 0.0
    class_sample = float(db.get("class_sampler_steps", 30)) * 2 * f.unet_forward + f.vae_decode
    db_flops = identities * float(db.get("steps", 0)) * train_step + class_images * class_sample
    db_hours = _gpu_hours(db_flops, gpu) + identities * p.dreambooth_overhead_seconds / 3600.0
    checks = (review.get("checks") or {}).get("enabled", False)
    view_check = (review.get("checks") or {}).get("view_check", True)
    # Identity check: an embedding of every kept image and subject photo; view check: the segmenter on kept images.
    check_flops = (kept + identities * photos) * f.consistency + (kept * f.segmenter if view_check else 0.0)
    check_flops = check_flops if checks else 0.0
    ft = seg.get("finetune") or {}
    encoder_factor = f.train_factor if ft.get("train_image_encoder") else 1.0
    ft_flops = float(ft.get("steps", 0)) * float(ft.get("batch_size", 1)) * f.segmenter * encoder_factor
    # 3. People.
    share, share_note = review_share(review, p.review_share, kept, p.review_share_measured)
    review_hours = kept * share * p.seconds_per_review / 3600.0
    mask_hours = p.mask_images * p.seconds_per_mask_image / 3600.0
    final = segmented + identities * real_per_id
    crops = assemble.get("crops", True)
    rows = b.manifest_row
    stages = [
        StageEstimate("subjects", identities, identities * photos, identities * photos, 0.0, 0.0,
                      identities * photos * (b.photo + rows), f"{photos} photos per identity"),
        StageEstimate("dreambooth", identities, identities * photos, identities, db_hours, 0.0,
                      identities * (b.lora + rows), f"{db.get('steps', 0)} steps per identity + "
                      f"{class_images:.0f} class images"),
        StageEstimate("synthesize", identities, generated, ok, _gpu_hours(identities * diffusion_per_id * sample, gpu),
                      0.0, generated * (b.generation + rows), f"{per_id:g} per identity, {synth.get('steps', 30)} "
                      "steps"),
        StageEstimate("filter", identities, ok, kept, _gpu_hours(ok * f.detector, gpu), 0.0, ok * rows + kept * b.crop,
                      "YOLO"),
        StageEstimate("review", identities, kept, accepted, _gpu_hours(check_flops, gpu), review_hours, kept * rows,
                      f"a person sees {share:.1%} ({share_note})" + ("; consistency checks" if checks else "")),
        StageEstimate("segment", identities, accepted, segmented, _gpu_hours(accepted * f.segmenter + ft_flops, gpu),
                      mask_hours, accepted * rows, f"{p.mask_images} images with human view masks"),
        StageEstimate("assemble", identities, segmented + identities * real_per_id, final, 0.0, 0.0,
                      final * rows + (segmented * b.crop if crops else 0.0),
                      f"{real_per_id} real per identity" + ("; crops" if crops else "")),
        StageEstimate("pretrain", identities, final, final, _gpu_hours(p.pretrain_epochs * final * f.pretrain_image,
                      gpu), 0.0, 0.0, f"{p.pretrain_epochs} epochs"),
    ]  # fmt: skip
    return Plan(
        images=images,
        identities=identities,
        per_identity={"generated": per_id, "synthetic": synthetic_per_id, "real": real_per_id},
        stages=stages,
        assumptions={"gpu": asdict(gpu), "yields": asdict(y), "review_share": share},
    )


def _share(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def measure_pilot(root: Path) -> dict[str, float]:
    """Yields (and the share of kept images a person decided) measured on a pilot build's manifests.

    Only figures with a non-empty denominator are returned: ``synthesize`` = ok generations / generations,
    ``filter`` = kept / detected, ``review`` = accepted / decided (accept or reject), ``segment`` = ok / segmented
    (the segmenter's rows; human annotations excluded), ``review_share`` = decided by a person (reviewer not
    ``auto*``) / decided.
    """
    import data_manifests as dm
    from data_manifests.queries import accepted_image_ids

    from .segment.annotations import is_human

    def rows(table: str, columns: list[str]) -> list[dict[str, Any]]:
        return dm.read_rows(root, table, columns=columns) if dm.table_exists(root, table) else []

    gens = rows("generations", ["image_id", "status"])
    dets = rows("detections", ["image_id", "status"])
    kept = {d["image_id"] for d in dets if d["status"] == dm.Status.OK}
    decided: dict[str, bool] = {}  # image -> decided by a person
    for r in rows("reviews", ["image_id", "decision", "reviewer"]):
        if r["image_id"] in kept and r["decision"] in ("accept", "reject"):
            person = not str(r["reviewer"] or "").startswith("auto")
            decided[r["image_id"]] = decided.get(r["image_id"], False) or person
    segs = [r for r in rows("segments", ["image_id", "status", "segmenter_ref"]) if not is_human(r["segmenter_ref"])]
    accepted = accepted_image_ids(root) & set(decided) if decided else set()
    figures = {
        "synthesize": _share(sum(g["status"] == dm.Status.OK for g in gens), len(gens)),
        "filter": _share(len(kept), len(dets)),
        "review": _share(len(accepted), len(decided)),
        "segment": _share(sum(r["status"] == dm.Status.OK for r in segs), len(segs)),
        "review_share": _share(sum(decided.values()), len(decided)),
    }
    return {k: round(v, 4) for k, v in figures.items() if v is not None}


def with_pilot(config: dict[str, Any], measured: dict[str, float]) -> dict[str, Any]:
    """A copy of ``config`` whose ``plan.yields`` (and the share a person sees) are the measured figures."""
    plan = dict(config.get("plan") or {})
    yields = dict(plan.get("yields") or {})
    yields.update({k: v for k, v in measured.items() if k != "review_share"})
    plan["yields"] = yields
    if "review_share" in measured:
        plan["review_share_measured"] = measured["review_share"]
    return {**config, "plan": plan}


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n:.0f} B"
        n /= 1000
    return f"{n:.1f} PB"


def format_plan(plan: Plan) -> str:
    """The plan as a markdown table plus totals and the main assumptions."""
    per = plan.per_identity
    lines = [
        f"Plan for {plan.images:,} images: {plan.identities:,} identities x ({per['synthetic']:.1f} synthetic "
        f"+ {per['real']:g} real) images; {per['generated']:g} generations per identity",
        "",
        "| stage | identities | images in | images out | GPU-hours | annotator-hours | storage | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in plan.stages:
        lines.append(
            f"| {s.stage} | {s.identities:,} | {s.images_in:,.0f} | {s.images_out:,.0f} | {s.gpu_hours:,.1f} | "
            f"{s.annotator_hours:,.1f} | {_size(s.storage_bytes)} | {s.note} |"
        )
    t = plan.totals()
    gpu = plan.assumptions["gpu"]
    lines += [
        f"| **total** | | | | **{t['gpu_hours']:,.0f}** | **{t['annotator_hours']:,.0f}** | "
        f"**{_size(t['storage_bytes'])}** | |",
        "",
        f"GPU-hours on {gpu['name']} at an achieved {gpu['tflops']:g} TFLOP/s; yields {plan.assumptions['yields']}.",
        "Every figure and how to replace the estimates with a pilot run's: docs/scale.md.",
    ]
    return "\n".join(lines)
