"""Multi-view synthesis: ``images_per_view`` images per (identity, view) from one or more backends.

The ``plan`` says which backend makes how many images of which views, e.g. in the toy profile::

    plan:
      - {backend: toyworld, images_per_view: 3}                  # rendered, with exact masks
      - {backend: diffusion, images_per_view: 1, views: [front, left]}   # tiny random SD + LoRA, end to end

Image ``index`` of (identity, view) has seed ``derive_seed(seed, "generate.image", identity, view, index)`` and id
``data_manifests.image_id(identity, view, seed, backend.model_ref)``, so re-runs reproduce the same ids and
images; ids already ``ok`` in ``generations`` are skipped. Each image is written atomically, then its row.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import yaml

import data_manifests as dm
from data_manifests import INTENDED_VIEWS, Reason, Status, check_id, inside_root
from data_manifests.rows import generation_row
from data_manifests.seeds import derive_seed

from .backends import BACKENDS, Backend, DiffusionBackend, Request, ToyworldBackend, groundtruth_row
from .common import (
    ModelsConfig,
    model_sha256,
    rare_token,
    resolve_base_model,
    resolve_path,
    set_torch_threads,
    write_png,
)
from .dreambooth import InputError, adapter_info, select_subjects

logger = logging.getLogger(__name__)

DEFAULT_BANK = "view_prompts.yaml"


@dataclass
class SynthesizeConfig:
    """The ``synthesize:`` config section (every value documented in docs/pipeline.md)."""

    plan: list[dict[str, Any]] = field(default_factory=lambda: [{"backend": "diffusion", "images_per_view": 2}])
    views: list[str] = field(default_factory=lambda: list(INTENDED_VIEWS))
    prompt_bank: str | None = None
    scheduler: str = "ddim"
    steps: int = 30
    guidance: float = 7.5
    width: int = 512
    height: int = 512
    batch_size: int = 4
    max_images: int | None = None
    device: str = "auto"
    dtype: str = "float32"
    toyworld_background: bool = True
    toyworld_occluders: bool = False
    flush_every: int = 64
    torch_threads: int | None = None
    report_grids: bool = True  # one PNG per identity under ROOT/reports/identities (pipeline/reports)
    seed: int = 0


@dataclass(frozen=True)
class PlanEntry:
    backend: str
    images_per_view: int
    views: tuple[str, ...]


@dataclass(frozen=True)
class ViewPrompt:
    prompt: str
    negative_prompt: str


def load_prompt_bank(path: str | Path | None = None) -> dict[str, ViewPrompt]:
    """The view-prompt bank: ``{view: ViewPrompt}``; the package's ``view_prompts.yaml`` by default.

    Every name must be in ``data_manifests.INTENDED_VIEWS`` (else an error naming the file and the valid names).
    """
    if path is None:
        text = resources.files("pipeline.generate").joinpath(DEFAULT_BANK).read_text()
        where = f"pipeline/generate/{DEFAULT_BANK}"
    else:
        if not Path(path).is_file():
            raise FileNotFoundError(f"prompt bank {path} (synthesize.prompt_bank) does not exist")
        text, where = Path(path).read_text(), str(path)
    data = yaml.safe_load(text) or {}
    views = data.get("views")
    if not isinstance(views, dict) or not views:
        raise ValueError(f"{where}: needs a `views:` mapping of view name -> {{prompt, negative}}")
    unknown = sorted(set(views) - set(INTENDED_VIEWS))
    if unknown:
        raise ValueError(f"{where}: unknown view name(s) {unknown}; valid names: {list(INTENDED_VIEWS)}")
    shared = str(data.get("negative_prompt") or "").strip()
    bank = {}
    for name, entry in views.items():
        if not isinstance(entry, dict) or "prompt" not in entry:
            raise ValueError(f"{where}: view {name!r} needs a `prompt`")
        negative = ", ".join(p for p in (shared, str(entry.get("negative") or "").strip()) if p)
        bank[name] = ViewPrompt(prompt=str(entry["prompt"]), negative_prompt=negative)
    return bank


def parse_plan(cfg: SynthesizeConfig, bank: dict[str, ViewPrompt]) -> list[PlanEntry]:
    """Validate ``views`` and ``plan`` against the view names, the prompt bank and the backend names."""
    unknown = [v for v in cfg.views if v not in INTENDED_VIEWS]
    if unknown:
        raise ValueError(f"synthesize.views: unknown view name(s) {unknown}; valid names: {list(INTENDED_VIEWS)}")
    entries = []
    for i, item in enumerate(cfg.plan):
        if not isinstance(item, dict) or set(item) - {"backend", "images_per_view", "views"}:
            raise ValueError(f"synthesize.plan[{i}] = {item!r}: expected keys backend, images_per_view, views")
        backend = item.get("backend")
        if backend not in BACKENDS:
            raise ValueError(f"synthesize.plan[{i}].backend={backend!r}; valid backends: {list(BACKENDS)}")
        views = tuple(item.get("views") or cfg.views)
        bad = [v for v in views if v not in INTENDED_VIEWS]
        if bad:
            raise ValueError(f"synthesize.plan[{i}].views: unknown view name(s) {bad}; valid: {list(INTENDED_VIEWS)}")
        n = int(item.get("images_per_view", 1))
        if n < 0:
            raise ValueError(f"synthesize.plan[{i}].images_per_view must be >= 0, got {n}")
        entries.append(PlanEntry(backend, n, views))
    missing = sorted({v for e in entries for v in e.views} - set(bank))
    if missing:
        raise ValueError(f"the prompt bank has no prompt for view(s) {missing}; add them to the bank YAML")
    return entries


def _row(req: Request, image_id: str, model_ref: str, settings: dict[str, Any], **outcome: Any) -> dict[str, Any]:
    """The ``generations`` row of ``req``; ``settings`` from :meth:`Backend.settings`; ``outcome`` is ``path``,
    ``sha256``, ``lora_sha256`` of a made image, or ``status``, ``reason``, ``message`` of one that was not made."""
    return generation_row(
        image_id=image_id,
        identity_id=req.identity_id,
        intended_view=req.view,
        prompt=req.prompt,
        negative_prompt=req.negative_prompt,
        seed=req.seed,
        model_ref=model_ref,
        **settings,
        **outcome,
    )


class _Writer:
    """Buffers ``generations`` / ``segments_gt`` rows and upserts them every ``flush_every`` rows."""

    def __init__(self, root: Path, flush_every: int) -> None:
        self.root, self.flush_every = root, flush_every
        self.rows: list[dict[str, Any]] = []
        self.gt: list[dict[str, Any]] = []

    def add(self, row: dict[str, Any], gt: dict[str, Any] | None = None) -> None:
        self.rows.append(row)
        if gt is not None:
            self.gt.append(gt)
        if len(self.rows) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        # Exact masks first: a generations row never exists without its ground truth.
        if self.gt:
            dm.upsert(self.root, "segments_gt", self.gt)
        if self.rows:
            dm.upsert(self.root, "generations", self.rows)
        self.rows, self.gt = [], []


def _work_list(
    root: Path,
    cfg: SynthesizeConfig,
    subjects: list[dict[str, Any]],
    plan: list[PlanEntry],
    bank: dict[str, Any],
    model_refs: dict[str, str],
    db_rows: dict[str, dict[str, Any]],
    done: set[str],
) -> tuple[list[tuple[dict[str, Any], PlanEntry, list[tuple[Request, str]]]], int]:
    """``(work, skipped)``: per subject and plan entry the requests whose image is not ``ok`` yet, and how many were."""
    taken = {s["token"] for s in subjects if s.get("token")}
    work: list[tuple[dict[str, Any], PlanEntry, list[tuple[Request, str]]]] = []
    skipped = 0
    for subject in subjects:
        ident = subject["identity_id"]
        token = _token(root, subject, db_rows.get(ident), taken)
        for entry in plan:
            todo = []
            for view in entry.views:
                for index in range(entry.images_per_view):
                    seed = derive_seed(cfg.seed, "generate.image", ident, view, index)
                    image_id = dm.image_id(ident, view, seed, model_refs[entry.backend])
                    if image_id in done:
                        skipped += 1
                        continue
                    vp = bank[view]
                    prompt = vp.prompt.format(token=token, class_name=subject["class_name"])
                    todo.append((Request(ident, view, index, seed, prompt, vp.negative_prompt), image_id))
            if todo:
                work.append((subject, entry, todo))
    return work, skipped


def run_synthesize(
    *,
    root: Path,
    models: ModelsConfig,
    cfg: SynthesizeConfig,
    identities: list[str] | None = None,
    progress_bar: bool = True,
) -> dict[str, int]:
    """Synthesize the planned images of every selected identity; returns counts by outcome.

    Errors before any write: unknown view names, unknown backends, duplicate/unknown identities, a missing base
    model (when the plan uses ``diffusion``). Per-image problems become ``generations`` rows with a status.
    """
    from tqdm.auto import tqdm

    root = Path(root)
    # 1. Validate everything first.
    bank = load_prompt_bank(resolve_path(root, cfg.prompt_bank) if cfg.prompt_bank else None)
    plan = parse_plan(cfg, bank)
    subjects = select_subjects(root, identities)
    uses_diffusion = any(e.backend == "diffusion" and e.images_per_view for e in plan)
    base = resolve_base_model(root, models) if uses_diffusion else None
    if any(e.backend == "toyworld" and e.images_per_view for e in plan) and cfg.width != cfg.height:
        raise ValueError(
            f"the toyworld backend renders squares; set synthesize.width == height (got {cfg.width}x{cfg.height})"
        )
    model_refs = {"toyworld": ToyworldBackend.model_ref}
    if base is not None:
        model_refs["diffusion"] = f"diffusion:{base.name}@{model_sha256(base)[:12]}"
    db_rows = {r["identity_id"]: r for r in dm.read_rows(root, "dreambooth", missing_ok=True)}
    done = dm.existing_keys(root, "generations", filter=pc.field("status") == str(Status.OK))

    # 2. Work list: (subject, plan entry, requests not yet ok).
    counts = {"processed": 0, "skipped": 0, "failed": 0, "pending": 0}
    work, counts["skipped"] = _work_list(root, cfg, subjects, plan, bank, model_refs, db_rows, done)

    # 3. Generate, identity by identity (adapters are applied once per identity), in batches.
    backends: dict[str, Backend] = {}
    writer = _Writer(root, cfg.flush_every)
    budget = cfg.max_images if cfg.max_images is not None else float("inf")
    made = 0
    total = sum(len(t) for _, _, t in work)
    bar = tqdm(total=total, desc="synthesize", disable=not progress_bar)
    for subject, entry, todo in work:
        ident = subject["identity_id"]
        model_ref = model_refs[entry.backend]
        settings_default = _settings_for(entry.backend, cfg)

        def fail(
            items: list[tuple[Request, str]],
            status: str,
            reason: str,
            message: str,
            model_ref: str = model_ref,
            settings: dict[str, Any] = settings_default,
        ) -> None:
            for req, image_id in items:
                writer.add(_row(req, image_id, model_ref, settings, status=status, reason=reason, message=message))
            counts["pending" if status == Status.PENDING else "failed"] += len(items)
            bar.update(len(items))

        adapter = None
        if entry.backend == "diffusion":
            db = db_rows.get(ident)
            if db is None or db["status"] != Status.OK or not db.get("lora_path"):
                state = "no row" if db is None else f"status {db['status']} ({db.get('reason')})"
                fail(
                    todo,
                    Status.FAILED,
                    Reason.UPSTREAM_NOT_OK,
                    f"dreambooth for {ident}: {state}; run `diffveri run dreambooth` first",
                )
                continue
            adapter = resolve_path(root, db["lora_path"])
        if made >= budget:
            fail(todo, Status.PENDING, Reason.BUDGET_EXHAUSTED, f"synthesize.max_images={cfg.max_images} reached")
            continue
        try:
            backend = backends.get(entry.backend) or _make_backend(entry.backend, cfg, base)
            backends[entry.backend] = backend
            backend.start_identity(subject, adapter)
        except Exception as exc:  # noqa: BLE001 - this identity fails, the others go on
            logger.exception("synthesize %s (%s): cannot start", ident, entry.backend)
            fail(todo, Status.FAILED, Reason.EXCEPTION, f"{type(exc).__name__}: {exc}")
            continue
        lora_sha = db_rows[ident]["lora_sha256"] if adapter is not None else None
        settings = backend.settings()
        try:
            start = 0
            while start < len(todo):
                if made >= budget:
                    fail(
                        todo[start:],
                        Status.PENDING,
                        Reason.BUDGET_EXHAUSTED,
                        f"synthesize.max_images={cfg.max_images} reached",
                    )
                    break
                # The last batch before the budget runs out is cut to what is left of it.
                batch = todo[start : start + int(min(cfg.batch_size, budget - made))]
                start += len(batch)
                try:
                    outputs = backend.generate([req for req, _ in batch])
                except Exception as exc:  # noqa: BLE001 - the batch fails, the next one is tried
                    logger.exception("synthesize %s: batch failed", ident)
                    fail(batch, Status.FAILED, Reason.EXCEPTION, f"{type(exc).__name__}: {exc}")
                    continue
                for (req, image_id), out in zip(batch, outputs):
                    rel = Path("generations") / check_id(ident, "identity_id") / f"{image_id}.png"
                    sha = write_png(inside_root(root, rel, "generated image"), out.image)
                    h, w = out.image.shape[:2]
                    settings_wh = {**settings, "width": w, "height": h}
                    row = _row(req, image_id, model_ref, settings_wh, path=str(rel), sha256=sha, lora_sha256=lora_sha)
                    gt = groundtruth_row(image_id, out.labels, out.bbox) if out.labels is not None else None
                    writer.add(row, gt)
                made += len(batch)
                counts["processed"] += len(batch)
                bar.update(len(batch))
        finally:
            backend.end_identity()
            writer.flush()
    writer.flush()
    bar.close()
    return counts


def _settings_for(backend: str, cfg: SynthesizeConfig) -> dict[str, Any]:
    if backend == "toyworld":
        return {"steps": None, "guidance": None, "scheduler": None, "width": cfg.width, "height": cfg.height}
    return {
        "steps": cfg.steps,
        "guidance": cfg.guidance,
        "scheduler": cfg.scheduler,
        "width": cfg.width,
        "height": cfg.height,
    }


def _make_backend(name: str, cfg: SynthesizeConfig, base: Path | None) -> Backend:
    if name == "diffusion":
        assert base is not None
        return DiffusionBackend(
            base_model=base,
            scheduler=cfg.scheduler,
            steps=cfg.steps,
            guidance=cfg.guidance,
            width=cfg.width,
            height=cfg.height,
            device=cfg.device,
            dtype=cfg.dtype,
        )
    if name == "toyworld":
        return ToyworldBackend(size=cfg.width, background=cfg.toyworld_background, occluders=cfg.toyworld_occluders)
    raise KeyError(f"unknown backend {name!r}; valid: {list(BACKENDS)}")


def _token(root: Path, subject: dict[str, Any], db_row: dict[str, Any] | None, taken: set[str]) -> str:
    """The identity's token: the one its adapter was trained with (safetensors metadata), else the subject's."""
    if db_row and db_row.get("status") == Status.OK and db_row.get("lora_path"):
        path = resolve_path(root, db_row["lora_path"])
        if path.is_file():
            token = adapter_info(path).get("token")
            if token:
                return token
    return subject.get("token") or rare_token(subject["identity_id"], taken)


def run_stage(config: dict[str, Any], root: Path, identities: list[str] | None):
    """``diffveri run synthesize``: the config dict becomes typed sections here, and only here."""
    from pipeline.config import section
    from pipeline.stages import StageResult

    from .common import import_model_libraries

    import_model_libraries()
    cfg = section(config, "synthesize", SynthesizeConfig)
    set_torch_threads(cfg.torch_threads)
    counts = run_synthesize(root=root, models=section(config, "models", ModelsConfig), cfg=cfg, identities=identities)
    message = "" if not counts["pending"] else f"{counts['pending']} image(s) left pending by synthesize.max_images"
    if cfg.report_grids and counts["processed"]:
        message = "; ".join(m for m in (message, _write_grids(root, identities)) if m)
    return StageResult("synthesize", counts, message)


def _write_grids(root: Path, identities: list[str] | None) -> str:
    """The identity grids of this run's identities (all when None); a picture that cannot be drawn is logged,
    never a reason to fail the stage whose images and rows are already written."""
    from pipeline.reports import identity_grids

    try:
        grids = identity_grids(root, identities)
    except Exception as exc:  # noqa: BLE001 - the report is a by-product of the stage
        logger.warning("synthesize: identity grids not drawn: %s: %s", type(exc).__name__, exc)
        return f"identity grids not drawn ({type(exc).__name__}: {exc})"
    folder = grids[0].path.parent if grids else Path(root) / "reports" / "identities"
    return f"{len(grids)} identity grid(s) in {folder}"


__all__ = ["InputError", "SynthesizeConfig", "load_prompt_bank", "parse_plan", "run_synthesize", "run_stage"]
