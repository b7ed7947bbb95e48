"""Fine-tuning engine pieces, a tiny supervised run that overfits, an unsupervised run, and the eval/plot CLIs."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
import torch

from data_manifests.schedule import warmup_cosine
from tests.reid.layouts import make_vehicleid, make_veri
from vehiclemae.config import load_config
from vehiclemae.reid import finetune as ft
from vehiclemae.reid.checkpoints import load_model
from vehiclemae.reid.config import FinetuneConfig
from vehiclemae.reid.runner import run


def test_batch_hard_triplet_matches_a_direct_loop() -> None:
    gen = torch.Generator().manual_seed(0)
    feat, labels = torch.randn(12, 5, generator=gen), torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    dist = torch.cdist(feat, feat)
    losses = []
    for i in range(12):
        pos = [dist[i, j] for j in range(12) if labels[j] == labels[i] and j != i]
        neg = [dist[i, j] for j in range(12) if labels[j] != labels[i]]
        losses.append(torch.relu(max(pos) - min(neg) + 0.3))
    torch.testing.assert_close(ft.batch_hard_triplet(feat, labels, 0.3), torch.stack(losses).mean())
    assert float(ft.batch_hard_triplet(feat, torch.arange(12), 0.3)) == 0.0  # no positives: nothing to learn


def test_layer_decay_groups_and_schedule() -> None:
    backbone, spec = ft.build_backbone("scratch", "vehiclemae_vit_toy_patch8", 32)
    model = ft.ReIDModel(backbone, 5, spec)
    groups = ft.build_optimizer(model, "adamw", lr=1.0, weight_decay=0.05, layer_decay=0.5).param_groups
    depth = len(backbone.blocks)
    scales = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    assert scales[id(backbone.patch_embed.proj.weight)] == pytest.approx(0.5 ** (depth + 1))
    assert scales[id(backbone.blocks[-1].mlp.fc1.weight)] == pytest.approx(0.5)
    assert scales[id(model.classifier.weight)] == 1.0
    assert all(g["weight_decay"] == 0.0 for g in groups if any(p.ndim <= 1 for p in g["params"]))
    assert id(model.bottleneck.bias) not in scales  # frozen BNNeck bias
    schedule = functools.partial(warmup_cosine, total=10, warmup=2, min_lr=0.01, warmup_start=1.0)  # as training
    assert 0 < schedule(0) < schedule(1.9) <= 1.0
    assert schedule(10) == pytest.approx(0.01)


def test_build_backbone_from_export_and_errors(tmp_path) -> None:
    from vehiclemae.models import create_encoder, save_encoder

    enc = create_encoder("vehiclemae_vit_toy_patch8", img_size=32)
    path = save_encoder(
        enc, tmp_path / "enc.safetensors", model_name="vehiclemae_vit_toy_patch8", img_size=32, source="vehiclemae"
    )
    backbone, spec = ft.build_backbone("export", "ignored", 32, str(path))
    assert spec["model_name"] == "vehiclemae_vit_toy_patch8" and spec["source"] == "vehiclemae"
    torch.testing.assert_close(
        backbone.state_dict()["blocks.0.attn.qkv.weight"], enc.state_dict()["blocks.0.attn.qkv.weight"]
    )
    with pytest.raises(ValueError, match="needs model.init_path"):
        ft.build_backbone("export", "x", 32)
    with pytest.raises(ValueError, match="model.init must be one of"):
        ft.build_backbone("imagenet", "x", 32)


def test_cluster_pseudo_labels_recover_clusters() -> None:
    gen = torch.Generator().manual_seed(1)
    centres = torch.randn(4, 16, generator=gen) * 3
    feats = centres.repeat_interleave(8, 0) + 0.1 * torch.randn(32, 16, generator=gen)
    labels = ft.cluster_pseudo_labels(feats, k1=8, k2=3, eps=0.6, min_samples=3)
    truth = np.repeat(np.arange(4), 8)
    assert labels.max() + 1 == 4
    for c in range(4):  # every true cluster maps to a single pseudo label
        assert len(set(labels[truth == c].tolist())) == 1


def _tiny_config(root, out, **overrides) -> FinetuneConfig:
    sets = [
        f"data.root={root}",
        f"output_dir={out}",
        "model.img_size=32",
        "model.drop_path_rate=0.0",
        "data.p=4",
        "data.k=4",
        "optim.lr=2.0e-3",
        "optim.epochs=8",
        "optim.warmup_epochs=0.5",
        "eval.every=4",
        "threads=2",
    ] + [f"{k}={v}" for k, v in overrides.items()]
    return load_config(FinetuneConfig, "configs/vehiclemae/finetune_toy.yaml", sets)


def test_supervised_finetune_overfits_a_tiny_set(tmp_path) -> None:
    root = make_veri(tmp_path / "VeRi", train_ids=4, test_ids=3, cams=2, per_cam=4)
    torch.manual_seed(0)
    result = run(_tiny_config(root, tmp_path / "run"))
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 8
    assert rows[-1]["loss"] < 0.6 * rows[0]["loss"]
    assert rows[-1]["acc"] >= 0.9  # the 4 training identities are memorised
    assert {"mAP", "Rank-1", "mINP"} <= set(result["last"])
    for name in ("checkpoints/checkpoint-best.pt", "checkpoints/checkpoint-last.pt", "config.yaml", "result.json"):
        assert (tmp_path / "run" / name).is_file()
    model, size = load_model(tmp_path / "run" / "checkpoints" / "checkpoint-last.pt")
    assert size == 32 and model(torch.zeros(2, 3, 32, 32)).shape == (2, 96)


def test_unsupervised_finetune_runs_with_pseudo_labels(tmp_path) -> None:
    root = make_veri(tmp_path / "VeRi", train_ids=4, test_ids=3, cams=2, per_cam=4)
    cfg = _tiny_config(root, tmp_path / "un", mode="unsupervised", **{"optim.epochs": 2, "unsupervised.k1": 8})
    result = run(cfg)
    rows = [json.loads(x) for x in (tmp_path / "un" / "metrics.jsonl").read_text().splitlines()]
    assert all("clusters" in r for r in rows)
    assert result["mode"] == "unsupervised"
    cfg.optim.lr *= 2
    with pytest.raises(ValueError, match=r"optim\.lr: .*--no-resume"):  # a rerun resumes, with the same config only
        run(cfg)
    cfg.optim.lr /= 2
    cfg.optim.epochs = 3
    run(cfg)  # resumes after epoch 1: one more row
    rows = [json.loads(x) for x in (tmp_path / "un" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1, 2]


def test_report_table(tmp_path) -> None:
    from vehiclemae.reid.report import collect, format_table

    for init, mode, m in [
        ("none", "supervised", 10.0),
        ("vehiclemae", "supervised", 30.0),
        ("mae", "unsupervised", 5.0),
    ]:
        d = tmp_path / f"ft-{init}-{mode}"
        d.mkdir()
        best = {"mAP": m, "Rank-1": m + 1, "epoch": 3, "val": {"mAP": 50.0}}
        (d / "result.json").write_text(json.dumps({"dataset": "veri776", "selection": "validation", "best": best}))
    zs = {"dataset": "veri776", "results": [{"mAP": 2.0, "Rank-1": 3.0}]}
    (tmp_path / "zeroshot-mae.json").write_text(json.dumps(zs))
    text = format_table(collect(tmp_path))
    lines = text.splitlines()
    assert lines[2:4] == ["| *No fine-tuning (pre-trained encoder as is)* | | | | |", "| mae | 2.0 | 3.0 | - | - |"]
    assert lines[4] == "| *Supervised fine-tuning* | | | | |"
    assert lines[5] == "| none | 10.0 | 11.0 | - | - |" and lines[6].startswith("| vehiclemae | 30.0")
    assert "| mae | 5.0 | 6.0 | - | - |" in text and "except" not in text
    # a run without validation and a result.json from before validation existed are marked, with a legend
    (tmp_path / "ft-none-supervised" / "result.json").write_text(
        json.dumps({"dataset": "veri776", "selection": "last_epoch", "best": {"mAP": 10.0, "Rank-1": 11.0}})
    )
    (tmp_path / "ft-mae-unsupervised" / "result.json").write_text(
        json.dumps({"dataset": "veri776", "best": {"mAP": 5.0, "Rank-1": 6.0}})
    )
    text = format_table(collect(tmp_path))
    assert "| none | 10.0 (last) | 11.0 (last) | - | - |" in text
    assert "| mae | 5.0 (test) | 6.0 (test) | - | - |" in text
    assert "- (last): no validation identities" in text and "chosen on the test set" in text


def test_eval_and_plot_commands(tmp_path, capsys) -> None:
    from vehiclemae.cli import main
    from vehiclemae.models import create_encoder, save_encoder

    enc = create_encoder("vehiclemae_vit_toy_patch8", img_size=32)
    ck = save_encoder(
        enc, tmp_path / "enc.safetensors", model_name="vehiclemae_vit_toy_patch8", img_size=32, source="mae"
    )
    vroot = make_vehicleid(tmp_path / "VehicleID_V1.0", train_ids=2, test_ids=8, per_id=3, sizes=(4, 8))
    assert (
        main(
            [
                "eval",
                "--checkpoint",
                str(ck),
                "--dataset",
                "vehicleid",
                "--root",
                str(vroot),
                "--trials",
                "3",
                "--out",
                str(tmp_path / "e.json"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "| Method | Test size | VehicleID Rank-1 | Rank-5 | mAP |" in out
    payload = json.loads((tmp_path / "e.json").read_text())
    assert [r["test_size"] for r in payload["results"]] == [4, 8]
    assert payload["results"][0]["num_trials"] == 3
    root = make_veri(tmp_path / "VeRi", train_ids=2, test_ids=4, cams=2, per_cam=2)
    for kind in ("distances", "tsne"):
        png = tmp_path / f"{kind}.png"
        assert (
            main(
                [
                    "plot",
                    kind,
                    "--checkpoint",
                    str(ck),
                    "--checkpoint",
                    str(ck),
                    "--label",
                    "a",
                    "--label",
                    "b",
                    "--dataset",
                    "veri776",
                    "--root",
                    str(root),
                    "--out",
                    str(png),
                ]
            )
            == 0
        )
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert (
        main(["eval", "--checkpoint", str(tmp_path / "missing.pth"), "--dataset", "veri776", "--root", str(root)]) == 2
    )


# ------------------------------------------------------------------------------------ validation-based selection
def test_validation_split_holds_out_training_identities(tmp_path) -> None:
    from vehiclemae.reid.data import load_vehicleid, load_veri776
    from vehiclemae.reid.validation import count_val_identities, split_validation

    veri = load_veri776(make_veri(tmp_path / "VeRi", train_ids=10, test_ids=2, cams=3, per_cam=2))
    val = split_validation(veri.train, "veri776", 0.2, seed=0)
    train_ids, test_ids = {s.pid for s in val.train}, {s.pid for s in veri.query + veri.gallery}
    assert len(val.val_pids) == 2 and not set(val.val_pids) & train_ids and not set(val.val_pids) & test_ids
    assert train_ids | set(val.val_pids) == {s.pid for s in veri.train}
    query, gallery = val.eval_split["query"], val.eval_split["gallery"]
    assert {s.pid for s in query + gallery} == set(val.val_pids) and len(query) + len(gallery) == 2 * 6
    assert not {s.path for s in query} & {s.path for s in gallery}
    for pid in val.val_pids:  # 2 queries on distinct cameras, each with a gallery match on another camera
        qs = [q for q in query if q.pid == pid]
        assert len(qs) == 2 and qs[0].camid != qs[1].camid
        assert all(any(g.pid == pid and g.camid != q.camid for g in gallery) for q in qs)
    # deterministic in the seed (resume redraws the same split); another seed holds out others
    assert split_validation(veri.train, "veri776", 0.2, seed=0).val_pids == val.val_pids
    assert any(split_validation(veri.train, "veri776", 2, seed=s).val_pids != val.val_pids for s in range(1, 5))
    assert split_validation(veri.train, "veri776", 0, seed=0).eval_split is None

    vid = load_vehicleid(make_vehicleid(tmp_path / "VehicleID", train_ids=6, test_ids=4, per_id=3, sizes=(4,)))
    vval = split_validation(vid.train, "vehicleid", 2, seed=0)
    assert len(vval.val_pids) == 2 and {s.pid for s in vval.eval_split["test"]} == set(vval.val_pids)
    assert not set(vval.val_pids) & ({s.pid for s in vval.train} | {s.pid for s in vid.test})

    assert [count_val_identities(v, 20) for v in (0, 0.2, 0.01, 3, 3.0)] == [0, 4, 1, 3, 3]
    with pytest.raises(ValueError, match="leaving 1 to train on; training needs at least 2"):
        count_val_identities(0.95, 20)
    with pytest.raises(ValueError, match="fraction in \\(0, 1\\), an integer count"):
        count_val_identities(2.5, 20)


def _fingerprint(model: torch.nn.Module) -> str:
    import hashlib

    digest = hashlib.sha1()
    for value in model.backbone.state_dict().values():
        digest.update(value.detach().cpu().numpy().tobytes())
    return digest.hexdigest()


@pytest.mark.parametrize("dataset", ["veri776", "vehicleid"])
def test_best_model_is_chosen_on_validation_not_test(tmp_path, monkeypatch, dataset) -> None:
    """Scripted metrics where validation and test disagree: the best checkpoint and result.json follow validation;
    the test split is evaluated only at the end, once for the chosen model and once for the last epoch."""
    from vehiclemae.reid import runner
    from vehiclemae.reid.runner import describe_result

    if dataset == "veri776":
        root = make_veri(tmp_path / "VeRi", train_ids=6, test_ids=3, cams=2, per_cam=2)
    else:
        root = make_vehicleid(tmp_path / "VehicleID", train_ids=6, test_ids=4, per_id=4, sizes=(4,))
    key = "mAP" if dataset == "veri776" else "Rank-1"
    val_script, test_script = [10.0, 50.0, 20.0, 30.0], [90.0, 5.0, 70.0, 60.0]  # test alone would pick epoch 0
    epoch_of: dict[str, int] = {}  # model weights -> the epoch they were validated at
    calls: list[tuple[str, int]] = []
    trained_pids: set[int] = set()
    evaluated_pids: dict[str, set[int]] = {"val": set(), "test": set()}

    def fake_evaluate(model, dataset_name, split, **kwargs):
        samples = split["query"] + split["gallery"] if dataset_name == "veri776" else split["test"]
        evaluated_pids[split["name"]] |= {s.pid for s in samples}
        if split["name"] == "val":
            epoch = epoch_of.setdefault(_fingerprint(model), len(epoch_of))
            value = val_script[epoch]
        else:
            epoch = epoch_of[_fingerprint(model)]
            value = test_script[epoch]
        calls.append((split["name"], epoch))
        return {"mAP": value, "Rank-1": value, "Rank-5": value, "mINP": value}

    original_train_epoch = runner._train_epoch

    def recording_train_epoch(model, train_set, *args, **kwargs):
        trained_pids.update(s.pid for s in train_set.samples)
        return original_train_epoch(model, train_set, *args, **kwargs)

    monkeypatch.setattr(runner, "evaluate_model", fake_evaluate)
    monkeypatch.setattr(runner, "_train_epoch", recording_train_epoch)
    cfg = _tiny_config(root, tmp_path / "run", **{"data.dataset": dataset, "optim.epochs": 4, "eval.every": 1})
    cfg.data.val_identities = 2
    result = run(cfg)

    assert calls == [("val", 0), ("val", 1), ("val", 2), ("val", 3), ("test", 3), ("test", 1)]
    assert result["selection"] == "validation" and result["val_identities"] == 2 and result["best_epoch"] == 1
    assert result["best"][key] == 5.0 and result["best"]["epoch"] == 1 and result["best"]["val"][key] == 50.0
    assert result["last"][key] == 60.0 and result["last"]["epoch"] == 3
    assert json.loads((tmp_path / "run" / "result.json").read_text()) == json.loads(json.dumps(result))
    best_model, _ = load_model(tmp_path / "run")  # a run folder stands for its best checkpoint
    assert epoch_of[_fingerprint(best_model)] == 1
    assert describe_result(result).startswith(f"best epoch 1 chosen on 2 validation identities (val {key} 50.0); test")
    # the validation identities were never trained on and are not test identities
    assert len(evaluated_pids["val"]) == 2 and len(trained_pids) == 4
    assert not evaluated_pids["val"] & trained_pids and not evaluated_pids["val"] & evaluated_pids["test"]
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["val"][key] for r in rows] == val_script and not any("test" in r or "eval" in r for r in rows)


def _write_views(root) -> None:
    """A toy-world meta file for a make_veri layout: camera 1 = front, 2 = rear (cross-view), 3 = front_left (same)."""
    from vehiclemae.reid.toymeta import write_toy_meta

    view = {1: ("front", 0.0), 2: ("rear", 180.0), 3: ("front_left", 45.0)}
    images = {}
    for folder in ("image_train", "image_query", "image_test"):
        for path in (root / folder).iterdir():
            name, azimuth = view[int(path.name.split("_c")[1][:3])]
            images[path.name] = {"view": name, "azimuth": azimuth, "elevation": 10.0}
    pids = {int(n[:4]) for n in images}
    identity = {"family": "fam0", "class_name": "sedan", "color_name": "red", "dims": [4.0, 1.8, 1.4]}
    write_toy_meta(root, 1, images, {p: {"identity_id": f"toy{p:03d}", **identity} for p in pids})


def test_resume_gives_the_straight_runs_result(tmp_path) -> None:
    root = make_veri(tmp_path / "VeRi", train_ids=6, test_ids=3, cams=3, per_cam=2)
    _write_views(root)
    sets = {"optim.epochs": 3, "eval.every": 1}
    straight = run(_tiny_config(root, tmp_path / "a", **sets))
    stopped = run(_tiny_config(root, tmp_path / "b", **sets), stop_after_epoch=2)
    assert stopped == {"stopped": True, "epochs_done": 2, "epochs": 3} and not (tmp_path / "b" / "result.json").exists()
    resumed = run(_tiny_config(root, tmp_path / "b", **sets))  # resumes automatically
    assert resumed == straight
    assert (tmp_path / "a" / "result.json").read_text() == (tmp_path / "b" / "result.json").read_text()
    assert (tmp_path / "a" / "metrics.jsonl").read_text() == (tmp_path / "b" / "metrics.jsonl").read_text()
    assert straight["val_identities"] == 1 and straight["selection"] == "validation"
    # the toy-world meta adds view-aware test metrics (validation keeps the standard ones)
    for part in ("best", "last"):
        assert straight[part]["cross_view_mAP"] is not None and straight[part]["same_view_mAP"] is not None
        assert straight[part]["cross_view_queries"] == 3
    assert "cross_view_mAP" not in straight["best"]["val"]
    # resuming under another validation split is refused
    with pytest.raises(ValueError, match="other validation identities"):
        run(_tiny_config(root, tmp_path / "b", **sets, **{"data.val_identities": 2}), resume=True)


def test_without_validation_best_is_the_last_epoch(tmp_path, caplog) -> None:
    root = make_vehicleid(tmp_path / "VehicleID", train_ids=4, test_ids=4, per_id=4, sizes=(4,))
    cfg = _tiny_config(root, tmp_path / "run", **{"data.dataset": "vehicleid", "optim.epochs": 2, "eval.every": 1})
    cfg.data.val_identities = 0
    cfg.eval.num_trials = 2
    with caplog.at_level("WARNING", logger="vehiclemae.reid.runner"):
        result = run(cfg)
    assert "best checkpoint will be the LAST epoch" in caplog.text
    assert result["selection"] == "last_epoch" and result["val_identities"] == 0 and result["best_epoch"] == 1
    assert result["best"]["val"] is None and result["best"] == result["last"]  # one test evaluation, reported twice
    assert {"Rank-1", "Rank-5", "mAP"} <= set(result["best"])
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and not any("val" in r for r in rows)
    model, _ = load_model(tmp_path / "run" / "checkpoints" / "checkpoint-best.pt")
    last, _ = load_model(tmp_path / "run" / "checkpoints" / "checkpoint-last.pt")
    assert _fingerprint(model) == _fingerprint(last)


def test_too_many_validation_identities_is_a_clear_error(tmp_path) -> None:
    root = make_veri(tmp_path / "VeRi", train_ids=4, test_ids=2, cams=2, per_cam=2)
    with pytest.raises(ValueError, match=r"val_identities=0.7 holds out 3 of the 4 training identities, leaving 1"):
        run(_tiny_config(root, tmp_path / "run", **{"data.val_identities": 0.7}))
    assert not (tmp_path / "run" / "checkpoints" / "checkpoint-last.pt").exists()


def test_validation_holds_out_whole_families_on_toy_world_roots() -> None:
    from vehiclemae.reid.validation import pick_val_identities

    pids = list(range(1, 21))
    groups = {p: f"fam{(p - 1) // 4}" for p in pids}
    for seed in range(5):
        held = pick_val_identities(pids, 4, np.random.default_rng(seed), groups)
        assert len(held) == 4 and len({groups[p] for p in held}) == 1
    # n_val between group sizes: whole groups until at least n_val; never every group
    held = pick_val_identities(pids, 5, np.random.default_rng(0), groups)
    assert len(held) == 8 and len({groups[p] for p in held}) == 2
    assert len(pick_val_identities(pids, 19, np.random.default_rng(0), groups)) == 16
    # without groups: plain identities, as before
    assert len(pick_val_identities(pids, 3, np.random.default_rng(0))) == 3


def test_flip_probability_outside_0_1_is_a_clear_error(tmp_path) -> None:
    root = make_veri(tmp_path / "VeRi", train_ids=4, test_ids=2, cams=2, per_cam=2)
    with pytest.raises(ValueError, match=r"data.hflip is a probability in \[0, 1\], got 2"):
        run(_tiny_config(root, tmp_path / "run", **{"data.hflip": 2}))
    assert not (tmp_path / "run").exists()
