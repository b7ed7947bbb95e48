"""Fine-tuning through the trackers: epoch scalars and retrieval pictures in TensorBoard; the run is unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from tests.reid.layouts import make_veri
from vehiclemae.config import load_config
from vehiclemae.reid.config import FinetuneConfig
from vehiclemae.reid.runner import run


def _config(root: Path, out: Path, log_with: str) -> FinetuneConfig:
    sets = [
        f"data.root={root}",
        f"output_dir={out}",
        f"log_with={log_with}",
        "model.img_size=32",
        "model.drop_path_rate=0.0",
        "data.p=2",
        "data.k=2",
        "data.val_identities=2",
        "optim.epochs=2",
        "optim.warmup_epochs=0.5",
        "eval.every=1",
        "eval.log_examples=3",
        "threads=1",
    ]
    return load_config(FinetuneConfig, "configs/vehiclemae/finetune_toy.yaml", sets)


def test_finetune_logs_scalars_and_retrieval_pictures_without_changing_the_run(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    root = make_veri(tmp_path / "VeRi", train_ids=6, test_ids=3, cams=2, per_cam=2)
    torch.manual_seed(0)
    plain = run(_config(root, tmp_path / "none", "none"))
    torch.manual_seed(0)
    logged = run(_config(root, tmp_path / "tb", "tensorboard"))
    assert json.dumps(plain, sort_keys=True, default=float) == json.dumps(logged, sort_keys=True, default=float)
    a = torch.load(tmp_path / "none" / "checkpoints" / "checkpoint-last.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "tb" / "checkpoints" / "checkpoint-last.pt", weights_only=False)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not (tmp_path / "none" / "tensorboard").exists()
    acc = EventAccumulator(str(tmp_path / "tb" / "tensorboard"), size_guidance={"images": 0, "scalars": 0}).Reload()
    scalars, images = acc.Tags()["scalars"], acc.Tags()["images"]
    assert {"loss", "acc", "val/mAP", "val/Rank-1", "test/best/mAP", "test/last/Rank-1"} <= set(scalars)
    assert [e.step for e in acc.Scalars("val/mAP")] == [0, 1]
    assert {"val/retrieval", "test/retrieval"} <= set(images)
    picture = acc.Images("val/retrieval")[0]
    assert picture.width > 5 * picture.height // 3  # 3 rows: query + 5 neighbours each
