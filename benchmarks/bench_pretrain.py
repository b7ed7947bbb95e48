"""Pre-training cost: step time of ``vehiclemae`` vs ``mae`` at the same backbone and batch, and data loading.

    python benchmarks/bench_pretrain.py [--quick] [--encoder NAME --img-size PX --batch N --threads T]

Targets (issue 8): ``step_ratio`` = vehiclemae step / mae step <= 2.4 (two MAEs plus two teacher forward passes);
``loader_ratio`` = loader images/s (one worker process: decode + RLE masks + joint augmentation + masks) / training
images/s of the vehiclemae step >= 2. Both figures are measured in the same run. The machine is shared: expect noise.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vehiclemae.data import DiffVERIDataset  # noqa: E402
from vehiclemae.engine.schedule import build_optimizer  # noqa: E402
from vehiclemae.models import ARCHS, build_vehiclemae  # noqa: E402
from vehiclemae.ppmd import PPMDTeachers  # noqa: E402


def data_root(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    from tests.vehiclemae.synth import make_diffveri  # toy-world renders written through data_manifests

    root = Path(tempfile.mkdtemp(prefix="bench-pretrain-"))
    print(f"no --root given: rendering 16 identities x 4 views into {root}")
    return make_diffveri(root, n_identities=16, size=128)


def step_times(batch: dict[str, torch.Tensor], args: argparse.Namespace, rounds: int) -> dict[str, float]:
    """Median seconds of one optimisation step (forward, backward, AdamW) per mode.

    The modes are timed round-robin (one step of each per round) so that load from other processes on this shared
    machine affects them alike; the ratios are what to read, not the absolute times.
    """
    runners = {}
    for mode in ("mae", "vmim", "vehiclemae"):
        torch.manual_seed(0)
        model = build_vehiclemae(
            encoder_name=args.encoder,
            img_size=args.img_size,
            mode=mode,
            num_view_classes=args.num_view_classes,
            decoder_embed_dim=args.decoder_dim,
            decoder_depth=args.decoder_depth,
            decoder_num_heads=args.decoder_heads,
            fg_floor=0.1,
            view_loss_weight=1.0,
            ppmd_predictor=True,  # the default PPMD setting (an MLP per student; ignored by mae/vmim)
        )
        teachers = PPMDTeachers(model.rgb.encoder, model.view.encoder) if mode == "vehiclemae" else None
        optimizer = build_optimizer(model, lr=1e-4, weight_decay=0.05, betas=(0.9, 0.95))
        runners[mode] = (model, teachers, optimizer)
    times: dict[str, list[float]] = {mode: [] for mode in runners}
    for i in range(rounds + 1):  # round 0 warms up
        for mode, (model, teachers, optimizer) in runners.items():
            t0 = time.perf_counter()
            loss, _ = model(
                batch["image"],
                batch["labels"],
                batch["fg"],
                batch["keep_a"],
                batch["keep_b"],
                teachers=teachers,
                ppmd_weight=1.0 if teachers is not None else 0.0,
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if i:
                times[mode].append(time.perf_counter() - t0)
    return {mode: statistics.median(values) for mode, values in times.items()}


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
    print(
        f"backbone {args.encoder} @ {args.img_size}px, batch {args.batch}, {args.threads} thread(s), "
        f"{len(dataset)} images; modes timed round-robin, median of {rounds} rounds"
    )

    # 1. Step time with MAE's decoder proportions (the paper's setting), then with a light decoder: the teachers'
    #    two encoder forward passes weigh more when the decoder is small.
    medians = step_times(batch, args, rounds)
    t_mae, t_vmim, t_full = medians["mae"], medians["vmim"], medians["vehiclemae"]
    print(f"decoder {args.decoder_dim} wide x {args.decoder_depth} deep:")
    print(f"  mae        step {t_mae * 1000:8.1f} ms   (reference)")
    print(f"  vmim       step {t_vmim * 1000:8.1f} ms   ratio {t_vmim / t_mae:.2f}")
    print(f"  vehiclemae step {t_full * 1000:8.1f} ms   ratio {t_full / t_mae:.2f}   (target <= 2.4)")
    light = ""
    if args.light_decoder_depth:
        light_args = argparse.Namespace(**{**vars(args), "decoder_depth": args.light_decoder_depth})
        lm = step_times(batch, light_args, rounds)
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
        f"train_ips={train_ips:.1f}"
    )


if __name__ == "__main__":
    main()
