"""Pre-training cost: step time of ``vehiclemae`` (and the baselines ``cmae``, ``clmae``) vs ``mae`` at the same
backbone and batch, and data loading.

    python benchmarks/bench_pretrain.py [--quick] [--encoder NAME --img-size PX --batch N --threads T]

Targets (issue 8): ``step_ratio`` = vehiclemae step / mae step <= 2.4 (two MAEs plus two teacher forward passes);
``loader_ratio`` = loader images/s (one worker process: decode + RLE masks + joint augmentation + masks) / training
images/s of the vehiclemae step >= 2. Issue 15: ``cmae_ratio`` <= 2.2 and ``clmae_ratio`` <= 1.8 (step time vs
``mae``), printed next to each mode's FLOPs per step (forward + backward, ``torch.utils.flop_counter``). All figures are
measured in the same run (modes timed round-robin). The machine is shared: expect noise.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from vehiclemae.data import DiffVERIDataset
from vehiclemae.engine.schedule import build_optimizer
from vehiclemae.models import ARCHS, build_vehiclemae
from vehiclemae.models.clmae import build_clmae
from vehiclemae.models.cmae import build_cmae
from vehiclemae.ppmd import PPMDTeachers


def data_root(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    from pipeline.toyworld.synthetic import write_diffveri  # toy-world renders written through data_manifests

    root = Path(tempfile.mkdtemp(prefix="bench-pretrain-"))
    print(f"no --root given: rendering 16 identities x 4 views into {root}")
    return write_diffveri(root, identities=16, size=128)


MODES = ("mae", "vmim", "vehiclemae", "cmae", "clmae")


def build_mode(mode: str, args: argparse.Namespace) -> torch.nn.Module:
    """The model of ``mode`` with the benchmark's backbone and decoder (the baselines with their default settings)."""
    common = dict(
        encoder_name=args.encoder,
        img_size=args.img_size,
        decoder_embed_dim=args.decoder_dim,
        decoder_depth=args.decoder_depth,
        decoder_num_heads=args.decoder_heads,
        fg_floor=0.1,
    )
    if mode == "cmae":
        return build_cmae(**common)  # feature decoder 2 deep, projection 256, target encoder on every patch
    if mode == "clmae":
        return build_clmae(**common, mask_ratio=0.75)  # masking module 5 deep at the encoder width
    return build_vehiclemae(
        **common, mode=mode, num_view_classes=args.num_view_classes, view_loss_weight=1.0, ppmd_predictor=True
    )  # the default PPMD setting (ignored by mae/vmim)


def one_step(
    model: torch.nn.Module,
    teachers: PPMDTeachers | None,
    optimizer: torch.optim.Optimizer,
    batch: dict[str, torch.Tensor],
) -> None:
    """Forward, backward, AdamW (and CMAE's EMA update)."""
    extra = {"image_t": batch["image_t"]} if hasattr(model, "momentum_update") else {}
    loss, _ = model(
        batch["image"],
        batch["labels"],
        batch["fg"],
        batch["keep_a"],
        batch["keep_b"],
        teachers=teachers,
        ppmd_weight=1.0 if teachers is not None else 0.0,
        **extra,
    )
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if extra:
        model.momentum_update(0.996)


def step_flops(runners: dict, batch: dict[str, torch.Tensor]) -> dict[str, float]:
    """FLOPs of one step (forward + backward; matmuls and attention, as counted by ``torch.utils.flop_counter``)."""
    from torch.utils.flop_counter import FlopCounterMode

    flops = {}
    for mode, (model, teachers, optimizer) in runners.items():
        counter = FlopCounterMode(display=False)
        with counter:
            one_step(model, teachers, optimizer, batch)
        flops[mode] = float(counter.get_total_flops())
    return flops


def step_times(
    batch: dict[str, torch.Tensor], args: argparse.Namespace, rounds: int, modes: tuple[str, ...] = MODES
) -> tuple[dict[str, float], dict[str, float]]:
    """Median seconds of one optimisation step (forward, backward, AdamW) per mode, and FLOPs per step.

    The modes are timed round-robin (one step of each per round) so that load from other processes on this shared
    machine affects them alike; the ratios are what to read, not the absolute times.
    """
    runners = {}
    for mode in modes:
        torch.manual_seed(0)
        model = build_mode(mode, args)
        teachers = PPMDTeachers(model.rgb.encoder, model.view.encoder) if mode == "vehiclemae" else None
        optimizer = build_optimizer(model, lr=1e-4, weight_decay=0.05, betas=(0.9, 0.95))
        runners[mode] = (model, teachers, optimizer)
    flops = step_flops(runners, batch)
    times: dict[str, list[float]] = {mode: [] for mode in runners}
    for i in range(rounds + 1):  # round 0 warms up
        for mode, (model, teachers, optimizer) in runners.items():
            t0 = time.perf_counter()
            one_step(model, teachers, optimizer, batch)
            if i:
                times[mode].append(time.perf_counter() - t0)
    return {mode: statistics.median(values) for mode, values in times.items()}, flops


def loader_rate(dataset: DiffVERIDataset, batch_size: int, n_batches: int) -> float:
    """Images per second of a DataLoader with one worker process (what one core sustains)."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=1, drop_last=True)
    count, t0 = 0, None
    for i, batch in enumerate(loader):
        if i == 0:  # exclude worker start-up
            t0 = time.perf_counter()
            continue
        count += batch["image"].shape[0]
        if i >= n_batches:
            break
    return count / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--root", default=None, help="data root with a diffveri table (default: fresh toy renders)")
    parser.add_argument("--view-classes", default="toyworld", help="view class set of the table: toyworld or pven")
    parser.add_argument("--encoder", default="vehiclemae_vit_tiny_patch16", choices=sorted(ARCHS))
    parser.add_argument("--img-size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--decoder-dim", type=int, default=128, help="MAE's proportions: 2/3 of the encoder width")
    parser.add_argument("--decoder-depth", type=int, default=8, help="MAE's default decoder depth")
    parser.add_argument("--decoder-heads", type=int, default=4)
    parser.add_argument("--light-decoder-depth", type=int, default=2, help="second measurement; 0 skips it")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rounds = 3 if args.quick else 10

    root = data_root(args.root)
    patch = ARCHS[args.encoder]["patch_size"]
    dataset = DiffVERIDataset(
        root, img_size=args.img_size, view_classes=args.view_classes, patch_size=patch, mask_ratio=0.75, splits=None
    )
    args.num_view_classes = len(dataset.view_classes)
    items = [dataset[i % len(dataset)] for i in range(args.batch)]
    batch = {k: torch.stack([it[k] for it in items]) for k in items[0]}
    # CMAE's target view: a shifted copy costs what the real one does (vehiclemae.data.shifted renders it in training).
    batch["image_t"] = batch["image"].roll((3, 5), dims=(-2, -1))
    print(
        f"backbone {args.encoder} @ {args.img_size}px, batch {args.batch}, {args.threads} thread(s), "
        f"{len(dataset)} images; modes timed round-robin, median of {rounds} rounds"
    )

    # 1. Step time with MAE's decoder proportions (the paper's setting), then with a light decoder: the teachers'
    #    two encoder forward passes weigh more when the decoder is small.
    medians, flops = step_times(batch, args, rounds)
    t_mae, t_vmim, t_full = medians["mae"], medians["vmim"], medians["vehiclemae"]
    targets = {
        "mae": "(reference)",
        "vehiclemae": "(target <= 2.4)",
        "cmae": "(target <= 2.2)",
        "clmae": "(target <= 1.8)",
    }
    print(f"decoder {args.decoder_dim} wide x {args.decoder_depth} deep:")
    for mode in MODES:
        print(
            f"  {mode:10s} step {medians[mode] * 1000:8.1f} ms   ratio {medians[mode] / t_mae:.2f}   "
            f"{flops[mode] / 1e9:7.1f} GFLOP/step (x{flops[mode] / flops['mae']:.2f})   {targets.get(mode, '')}"
        )
    baselines = " ".join(
        f"{mode}_ratio={medians[mode] / t_mae:.3f} {mode}_flop_ratio={flops[mode] / flops['mae']:.3f} "
        f"{mode}_gflop={flops[mode] / 1e9:.2f}"
        for mode in ("cmae", "clmae")
    )
    light = ""
    if args.light_decoder_depth:
        light_args = argparse.Namespace(**{**vars(args), "decoder_depth": args.light_decoder_depth})
        lm, _ = step_times(batch, light_args, rounds, modes=("mae", "vmim", "vehiclemae"))
        print(f"decoder {args.decoder_dim} wide x {args.light_decoder_depth} deep:")
        print(
            f"  mae {lm['mae'] * 1000:.1f} ms, vmim ratio {lm['vmim'] / lm['mae']:.2f}, "
            f"vehiclemae ratio {lm['vehiclemae'] / lm['mae']:.2f}"
        )
        light = f" step_ratio_light_decoder={lm['vehiclemae'] / lm['mae']:.3f}"

    # 2. Data loading vs what the vehiclemae step consumes.
    train_ips = args.batch / t_full
    load_ips = loader_rate(dataset, args.batch, 4 if args.quick else 12)
    print(
        f"training {train_ips:8.1f} img/s;  loader (1 worker) {load_ips:8.1f} img/s;  "
        f"ratio {load_ips / train_ips:.2f} (target >= 2)"
    )
    print(
        f"RESULT step_ratio={t_full / t_mae:.3f} vmim_ratio={t_vmim / t_mae:.3f} "
        f"loader_ratio={load_ips / train_ips:.3f}{light} "
        f"mae_step_ms={t_mae * 1000:.1f} vehiclemae_step_ms={t_full * 1000:.1f} loader_ips={load_ips:.1f} "
        f"train_ips={train_ips:.1f} mae_gflop={flops['mae'] / 1e9:.2f} {baselines}"
    )


if __name__ == "__main__":
    main()
