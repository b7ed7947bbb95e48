from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
import yaml

from vehiclemae.engine import NonFiniteLossError, run_pretraining
from vehiclemae.engine.checkpoint import load_checkpoint
from vehiclemae.masking import make_masks
from vehiclemae.models import build_vehiclemae
from vehiclemae.ppmd import PPMDTeachers, ppmd_weight

from .helpers import toy_config


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


def test_resume_is_exact(diffveri_root: Path, tmp_path: Path) -> None:
    """2 epochs straight == 1 epoch + resume + 1 epoch: identical weights, optimiser and teachers on the CPU."""
    straight = run_pretraining(toy_config(diffveri_root, tmp_path / "a", epochs=2))
    run_pretraining(toy_config(diffveri_root, tmp_path / "b", epochs=2), stop_after_epoch=1)
    resumed = run_pretraining(toy_config(diffveri_root, tmp_path / "b", epochs=2))  # resumes automatically
    a, b = load_checkpoint(straight), load_checkpoint(resumed)
    assert a["epoch"] == b["epoch"] == 2 and a["global_step"] == b["global_step"]
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for key in a["teachers"]:
        assert torch.equal(a["teachers"][key], b["teachers"][key]), key
    state_a, state_b = a["optimizer"]["state"], b["optimizer"]["state"]
    assert all(torch.equal(state_a[i]["exp_avg"], state_b[i]["exp_avg"]) for i in state_a)
    # the run folder holds the resolved config with the git SHA, and JSON-lines logs
    saved = yaml.safe_load((tmp_path / "b" / "config.yaml").read_text())
    assert saved["epochs"] == 2 and saved["git_sha"]
    records = [json.loads(line) for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert {"loss", "loss_rgb", "loss_view", "lr", "step"} <= set(records[0])
    assert any("loss_ppmd" in r for r in records if r["epoch"] == 1)
    assert not any("loss_ppmd" in r for r in records if r["epoch"] == 0)
    assert list((tmp_path / "a" / "tensorboard").iterdir())
    # resuming with another model is refused, naming the difference
    with pytest.raises(ValueError, match="different model.*mode"):
        run_pretraining(toy_config(diffveri_root, tmp_path / "b", epochs=3, **{"method.mode": "vmim"}), resume=True)
    # resuming with another training config is refused, naming the key and the way out
    with pytest.raises(ValueError, match=r"optim\.blr: .*--no-resume"):
        run_pretraining(toy_config(diffveri_root, tmp_path / "a", epochs=3, **{"optim.blr": 1e-3}))
    # --no-resume starts over: the earlier checkpoints are removed, the new run writes its own
    run_pretraining(toy_config(diffveri_root, tmp_path / "a", epochs=1), resume=False)
    assert sorted(p.name for p in (tmp_path / "a" / "checkpoints").iterdir()) == [
        "checkpoint-0001.pt",
        "checkpoint-last.pt",
    ]
    assert load_checkpoint(tmp_path / "a")["epoch"] == 1


def test_teacher_is_previous_epoch_and_gets_no_gradient(diffveri_root: Path, tmp_path: Path) -> None:
    run_pretraining(toy_config(diffveri_root, tmp_path / "r", epochs=2))
    ck1 = load_checkpoint(tmp_path / "r" / "checkpoints" / "checkpoint-0001.pt")
    ck2 = load_checkpoint(tmp_path / "r" / "checkpoints" / "checkpoint-0002.pt")
    # at the end of epoch e the teachers are exactly the students' encoders of epoch e (used during epoch e + 1)
    for ck in (ck1, ck2):
        for name, value in ck["teachers"].items():
            if name == "ready":
                continue
            branch, rest = name.split(".", 1)
            assert torch.equal(value, ck["model"][f"{branch}.encoder.{rest}"]), name
    assert not torch.equal(
        ck1["teachers"]["rgb.blocks.0.attn.qkv.weight"], ck2["teachers"]["rgb.blocks.0.attn.qkv.weight"]
    )

    # within an epoch the teachers stay frozen while the students move, and receive no gradient
    torch.manual_seed(0)
    model = build_vehiclemae(
        encoder_name="vehiclemae_vit_toy_patch8",
        img_size=32,
        mode="vehiclemae",
        num_view_classes=6,
        decoder_embed_dim=32,
        decoder_depth=1,
        decoder_num_heads=2,
        fg_floor=0.1,
        view_loss_weight=1.0,
    )
    teachers = PPMDTeachers(model.rgb.encoder, model.view.encoder)
    snapshot = {k: v.clone() for k, v in teachers.state_dict().items()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    x, labels = torch.randn(2, 3, 32, 32), torch.randint(0, 6, (2, 32, 32))
    for step in range(3):
        keep_a, keep_b = make_masks("asymmetric", 2, 16, 0.75, torch.Generator().manual_seed(step))
        loss, parts = model(x, labels, (labels > 0).float(), keep_a, keep_b, teachers=teachers, ppmd_weight=1.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        assert parts["loss_ppmd"] > 0
    assert all(p.grad is None and not p.requires_grad for p in teachers.parameters())
    assert all(torch.equal(v, snapshot[k]) for k, v in teachers.state_dict().items())
    assert not torch.equal(model.rgb.encoder.blocks[0].mlp.fc1.weight, teachers.rgb.blocks[0].mlp.fc1.weight)
    assert [ppmd_weight(e, 2.0, 4) for e in range(6)] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.0]


def test_tiny_batch_overfits() -> None:
    torch.manual_seed(0)
    model = build_vehiclemae(
        encoder_name="vehiclemae_vit_toy_patch8",
        img_size=32,
        mode="vmim",
        num_view_classes=6,
        decoder_embed_dim=32,
        decoder_depth=1,
        decoder_num_heads=2,
        fg_floor=0.1,
        view_loss_weight=1.0,
    )
    x = torch.randn(2, 3, 32, 32)
    labels = torch.zeros(2, 32, 32, dtype=torch.long)
    labels[:, 8:24, 4:28] = torch.tensor([1, 3]).view(2, 1, 1)
    keep_a, keep_b = make_masks("asymmetric", 2, 16, 0.75, torch.Generator().manual_seed(0))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    losses = []
    for _ in range(150):
        loss, parts = model(x, labels, (labels > 0).float(), keep_a, keep_b)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append((float(parts["loss_rgb"]), float(parts["loss_view"])))
    assert losses[-1][0] < 0.2 * losses[0][0]
    assert losses[-1][1] < 0.1 * losses[0][1]


def test_non_finite_loss_stops_with_a_clear_error(diffveri_root: Path, tmp_path: Path) -> None:
    cfg = toy_config(diffveri_root, tmp_path / "nan", epochs=1, **{"method.view_loss_weight": ".nan"})
    with pytest.raises(NonFiniteLossError, match="non-finite loss at epoch 0, iteration 0.*optim.blr"):
        run_pretraining(cfg)
    assert not (tmp_path / "nan" / "checkpoints" / "checkpoint-last.pt").exists()


def test_mae_mode_and_config_errors(diffveri_root: Path, tmp_path: Path) -> None:
    path = run_pretraining(toy_config(diffveri_root, tmp_path / "mae", epochs=1, **{"method.mode": "mae"}))
    ck = load_checkpoint(path)
    assert ck["teachers"] is None and not any(k.startswith("view.") for k in ck["model"])
    with pytest.raises(ValueError, match="mask_ratio >= 0.5"):
        run_pretraining(toy_config(diffveri_root, tmp_path / "x", **{"method.mask_ratio": 0.3}))
    with pytest.raises(ValueError, match="needs model.init_path"):
        run_pretraining(toy_config(diffveri_root, tmp_path / "y", **{"model.init": "clip"}))


def test_configs_load() -> None:
    from vehiclemae.config import load_config
    from vehiclemae.engine import PretrainConfig
    from vehiclemae.engine.pretrain import _check_config

    root = Path(__file__).resolve().parents[2] / "configs" / "vehiclemae"
    for name in ("toy", "paper"):
        cfg = load_config(PretrainConfig, root / f"{name}.yaml")
        _check_config(cfg)
        assert cfg.profile == name
    paper = load_config(PretrainConfig, root / "paper.yaml")
    assert paper.optim.batch_size * paper.optim.accum_steps * 8 == 4096 and paper.method.mask_ratio == 0.75


# ---------------------------------------------------------------------------------------------------- DDP parity
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, root: str, out: str) -> None:
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        LOCAL_WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        OMP_NUM_THREADS="1",
    )
    torch.set_num_threads(1)
    run_pretraining(toy_config(Path(root), Path(out), epochs=2, **{"optim.batch_size": 4}))


def test_ddp_two_processes_match_one(diffveri_root: Path, tmp_path: Path) -> None:
    """A 2-process gloo run (4 images each) ends with the weights of a 1-process run with batch 8."""
    import torch.multiprocessing as mp

    single = load_checkpoint(run_pretraining(toy_config(diffveri_root, tmp_path / "one", epochs=2)))
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(diffveri_root), str(tmp_path / "two")), nprocs=2, join=True)
    double = load_checkpoint(tmp_path / "two" / "checkpoints" / "checkpoint-last.pt")
    assert double["global_step"] == single["global_step"]
    assert double["config"]["optim"]["batch_size"] == 4
    # Float sums in another order (gloo all-reduce vs one batch) differ in the last bits; Adam normalises every
    # parameter's step, so a weight whose gradient is ~0 can move by a few 1e-6 either way (1.4e-5 seen on an
    # AVX-512 CPU). A real parity bug (unaveraged gradients, a skipped step) moves weights by ~1e-3.
    for key, value in single["model"].items():
        torch.testing.assert_close(double["model"][key], value, rtol=1e-4, atol=5e-5, msg=key)


def test_gradient_accumulation_matches_the_large_batch(diffveri_root: Path, tmp_path: Path) -> None:
    """batch 4 x 2 accumulation steps == batch 8 (same images per optimiser step, same lr, same clipping)."""
    big = load_checkpoint(run_pretraining(toy_config(diffveri_root, tmp_path / "big", epochs=1)))
    acc = load_checkpoint(
        run_pretraining(
            toy_config(diffveri_root, tmp_path / "acc", epochs=1, **{"optim.batch_size": 4, "optim.accum_steps": 2})
        )
    )
    for key, value in big["model"].items():
        torch.testing.assert_close(acc["model"][key], value, rtol=1e-4, atol=1e-5)


def test_bf16_autocast_runs_on_cpu(diffveri_root: Path, tmp_path: Path) -> None:
    path = run_pretraining(toy_config(diffveri_root, tmp_path / "bf16", epochs=1, mixed_precision="bf16"))
    ck = load_checkpoint(path)
    assert ck["config"]["mixed_precision"] == "bf16"
    assert all(v.dtype == torch.float32 for v in ck["model"].values() if v.is_floating_point())  # fp32 master weights
    assert torch.isfinite(torch.tensor(ck["stats"]["loss"]))


def test_loader_workers_do_not_change_the_run(diffveri_root: Path, tmp_path: Path) -> None:
    """Items are a function of (seed, epoch, index): worker processes give bit-identical training."""
    zero = load_checkpoint(run_pretraining(toy_config(diffveri_root, tmp_path / "w0", epochs=1)))
    two = load_checkpoint(
        run_pretraining(toy_config(diffveri_root, tmp_path / "w2", epochs=1, **{"data.num_workers": 2}))
    )
    assert all(torch.equal(two["model"][k], v) for k, v in zero["model"].items())


def test_run_progress_bar_counts_the_whole_run_and_resumes_from_its_place(
    diffveri_root: Path, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    """The run-level bar's total is every configured epoch (its ETA is the run's); a resumed run starts where the
    checkpoint left off rather than at 0."""
    import re

    cfg = toy_config(diffveri_root, tmp_path / "r", epochs=2, **{"method.mode": "mae", "monitor.probe_size": 0})
    run_pretraining(cfg, stop_after_epoch=1)
    first = capfd.readouterr().err
    counts = [tuple(map(int, m)) for m in re.findall(r"run:\s+\d+%\|[^|]*\|\s*(\d+)/(\d+)", first)]
    total = counts[-1][1]
    assert total % 2 == 0 and counts[-1] == (total // 2, total)  # stopped after epoch 1 of 2
    run_pretraining(cfg, resume=True)
    second = capfd.readouterr().err
    counts = [tuple(map(int, m)) for m in re.findall(r"run:\s+\d+%\|[^|]*\|\s*(\d+)/(\d+)", second)]
    assert counts[0] == (total // 2, total) and counts[-1] == (total, total)
