"""Frozen protocols: token features, the validation split, a linear probe on separable features, run_frozen on a
tiny exported encoder and a random init, and the `vehiclemae probe` CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from tests.reid.layouts import make_veri
from tests.reid.toy_layouts import make_toy_veri
from vehiclemae.cli import main
from vehiclemae.reid import frozen
from vehiclemae.reid.data import load_veri776
from vehiclemae.reid.frozen import (
    ProbeConfig,
    build_frozen_encoder,
    check_protocols,
    extract_tokens,
    run_frozen,
    split_validation,
    train_linear_probe,
)

TEST_IDS = {7, 8, 9, 10, 11}  # make_veri: train ids 1-6, test ids 7-11


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory):
    return make_toy_veri(tmp_path_factory.mktemp("frozen") / "VeRi")


@pytest.fixture(scope="module")
def encoder_file(tmp_path_factory):
    from vehiclemae.models import create_encoder, save_encoder

    torch.manual_seed(0)
    enc = create_encoder("vehiclemae_vit_toy_patch8", img_size=32)
    path = tmp_path_factory.mktemp("enc") / "enc.safetensors"
    return save_encoder(enc, path, model_name="vehiclemae_vit_toy_patch8", img_size=32, source="vehiclemae")


def test_check_protocols() -> None:
    assert check_protocols("knn_cls, linear_probe") == ["knn_cls", "linear_probe"]
    with pytest.raises(ValueError, match="valid protocols: knn_mean, knn_cls, linear_probe"):
        check_protocols(["knn_mean", "knn_max"])


def test_tokens_exclude_prefix_and_use_final_norm(toy_root, encoder_file) -> None:
    model, spec = build_frozen_encoder(encoder_file)
    assert spec["img_size"] == 32 and spec["model_name"] == "vehiclemae_vit_toy_patch8"
    samples = load_veri776(toy_root).query[:3]
    tokens = extract_tokens(model, samples, 32, batch_size=2)
    from vehiclemae.reid.evaluate import eval_loader

    images = torch.cat([b["image"] for b in eval_loader(samples, 32, 8)])
    with torch.no_grad():
        full = model.forward_features(images)  # (3, 1 + 16, 96), normed
    assert full.shape[1] == model.num_prefix_tokens + 16
    torch.testing.assert_close(tokens["cls"], full[:, 0])
    torch.testing.assert_close(tokens["mean"], full[:, model.num_prefix_tokens :].mean(1))
    with torch.no_grad():
        torch.testing.assert_close(tokens["cls"], model(images))  # timm's pooled class token = our knn_cls feature
    np.testing.assert_array_equal(tokens["pids"], [s.pid for s in samples])


def test_random_init_is_seeded() -> None:
    a, _ = build_frozen_encoder(None, init_seed=3, img_size=32)
    b, _ = build_frozen_encoder(None, init_seed=3, img_size=32)
    c, _ = build_frozen_encoder(None, init_seed=4, img_size=32)
    torch.testing.assert_close(a.state_dict(), b.state_dict())
    assert not torch.equal(a.blocks[0].attn.qkv.weight, c.blocks[0].attn.qkv.weight)


def test_split_validation_holds_out_whole_identities() -> None:
    pids = np.repeat(np.arange(1, 11), 6)
    cams = np.tile([1, 1, 2, 2, 3, 3], 10)
    tr, vq, vg = split_validation(pids, cams, fraction=0.2, seed=0)
    val_ids = set(pids[vq]) | set(pids[vg])
    assert len(val_ids) == 2 and not val_ids & set(pids[tr])
    assert sorted(np.concatenate([tr, vq, vg]).tolist()) == list(range(60))
    for pid in val_ids:  # two queries on distinct cameras per validation identity
        q = vq[pids[vq] == pid]
        assert q.size == 2 and cams[q[0]] != cams[q[1]]
    tr2, vq2, _ = split_validation(pids, cams, fraction=0.2, seed=0)
    np.testing.assert_array_equal(tr, tr2)
    np.testing.assert_array_equal(vq, vq2)
    with pytest.raises(ValueError, match=">= 3 training identities"):
        split_validation(np.array([1, 1, 2]), np.array([1, 2, 1]))


def _clusters(ids: np.ndarray, dim: int, noise: float, seed: int) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    gen = np.random.default_rng(seed)
    centres = {pid: gen.normal(size=dim) for pid in np.unique(ids)}
    feats = np.stack([centres[p] + noise * gen.normal(size=dim) for p in ids])
    cams = np.arange(ids.size) % 3
    return torch.from_numpy(feats).float(), ids, cams


def test_linear_probe_on_separable_features_reaches_near_100() -> None:
    # 30 training identities (6 of them held out for validation) and 10 unseen test identities, 6 images each.
    train_f, train_p, train_c = _clusters(np.repeat(np.arange(30), 6), 48, 0.15, seed=0)
    tr, vq, vg = split_validation(train_p, train_c, 0.2, seed=0)
    res = train_linear_probe(
        train_f[tr],
        train_p[tr],
        (train_f[vq], train_p[vq], train_c[vq]),
        (train_f[vg], train_p[vg], train_c[vg]),
        ProbeConfig(epochs=40, eval_every=5, lr=3e-3),
    )
    assert res.val_mAP > 95.0
    assert res.epoch in {h["epoch"] for h in res.history}
    assert res.val_mAP == max(h["val_mAP"] for h in res.history)
    test_f, test_p, test_c = _clusters(np.repeat(np.arange(100, 110), 6), 48, 0.15, seed=1)
    # Same centres generator is not shared: test ids are new vectors the probe never saw.
    emb = torch.nn.functional.normalize(res.head(test_f), dim=1)
    q, g = np.arange(60) % 6 == 0, np.arange(60) % 6 != 0
    dist = (1 - emb[q] @ emb[g].T).detach().numpy()
    from vehiclemae.reid.views import retrieval_metrics

    assert retrieval_metrics(dist, test_p[q], test_p[g], test_c[q], test_c[g])["mAP"] > 95.0


def test_linear_probe_is_deterministic() -> None:
    f, p, c = _clusters(np.repeat(np.arange(8), 4), 16, 0.5, seed=2)
    tr, vq, vg = split_validation(p, c, 0.25, seed=1)
    args = (f[tr], p[tr], (f[vq], p[vq], c[vq]), (f[vg], p[vg], c[vg]), ProbeConfig(epochs=6, eval_every=2))
    a, b = train_linear_probe(*args), train_linear_probe(*args)
    assert a.epoch == b.epoch and a.history == b.history
    torch.testing.assert_close(a.head.state_dict(), b.head.state_dict())


def test_run_frozen_all_protocols(toy_root, encoder_file, monkeypatch) -> None:
    seen = {}
    real = frozen.train_linear_probe

    def spy(train_feats, train_pids, val_query, val_gallery, cfg, device):
        seen.update(train=set(train_pids.tolist()), val=set(val_query[1].tolist()) | set(val_gallery[1].tolist()))
        return real(train_feats, train_pids, val_query, val_gallery, cfg, device)

    monkeypatch.setattr(frozen, "train_linear_probe", spy)
    res = run_frozen(encoder_file, toy_root, frozen.PROTOCOLS, probe=ProbeConfig(epochs=6, eval_every=3))
    assert set(res) == set(frozen.PROTOCOLS)
    for metrics in res.values():
        for key in ("mAP", "rank1", "mINP", "same_view_mAP", "cross_view_mAP"):
            assert math.isfinite(metrics[key]) and 0.0 <= metrics[key] <= 100.0
        assert metrics["num_queries"] == 5
    lp = res["linear_probe"]
    # The probe trains and selects on training identities only; the test identities are never seen.
    assert seen["train"] and seen["val"] and not seen["train"] & seen["val"]
    assert seen["train"] | seen["val"] == {1, 2, 3, 4, 5, 6} and not (seen["train"] | seen["val"]) & TEST_IDS
    assert lp["selected_epoch"] in (3, 6) and lp["num_train_ids"] == len(seen["train"])
    assert lp["feature"] == "cls+mean" and 0.0 <= lp["val_mAP"] <= 100.0


def test_run_frozen_random_init_without_meta(tmp_path) -> None:
    root = make_veri(tmp_path / "VeRi")
    res = run_frozen(None, root, "knn_mean", init_seed=1, img_size=32)
    assert list(res) == ["knn_mean"] and res["knn_mean"]["cross_view_mAP"] is None
    assert 0.0 <= res["knn_mean"]["mAP"] <= 100.0


def test_cli(toy_root, encoder_file, tmp_path, capsys) -> None:
    out = tmp_path / "probe.json"
    argv = ["probe", "--checkpoint", str(encoder_file), "--dataset", "veri776", "--root", str(toy_root)]
    assert main([*argv, "--protocols", "knn_mean,knn_cls", "--out", str(out)]) == 0
    assert "| knn_cls |" in capsys.readouterr().out
    assert set(json.loads(out.read_text())["results"]) == {"knn_mean", "knn_cls"}
    assert main([*argv, "--protocols", "knn_mean,knn_max"]) == 2
    assert "valid protocols: knn_mean, knn_cls, linear_probe" in capsys.readouterr().err
    assert main(["probe", "--checkpoint", str(tmp_path / "none.safetensors"), "--root", str(toy_root)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["probe", "--init", "scratch", "--root", str(tmp_path)]) == 2
    assert "is not a VeRi-776 root" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: --checkpoint or --init is required
        main(["probe", "--root", str(toy_root)])


def test_split_validation_holds_out_whole_families() -> None:
    # 12 identities in 3-member families; the probe and fine-tuning share this split (validation.split_validation).
    pids = np.repeat(np.arange(1, 13), 6)
    cams = np.tile([1, 1, 2, 2, 3, 3], 12)
    groups = {int(p): f"fam{(int(p) - 1) // 3}" for p in np.unique(pids)}
    tr, vq, vg = split_validation(pids, cams, fraction=0.25, seed=0, groups=groups)
    val_ids = set(pids[vq]) | set(pids[vg])
    assert len(val_ids) == 3 and len({groups[p] for p in val_ids}) == 1  # exactly one whole family
    assert not {groups[p] for p in val_ids} & {groups[p] for p in set(pids[tr])}
    assert sorted(np.concatenate([tr, vq, vg]).tolist()) == list(range(72))


def test_run_frozen_on_validation_identities_never_reads_test(toy_root, encoder_file, monkeypatch) -> None:
    seen: list[set[int]] = []
    real = frozen.extract_tokens

    def spy(model, samples, *args, **kwargs):
        seen.append({s.pid for s in samples})
        return real(model, samples, *args, **kwargs)

    monkeypatch.setattr(frozen, "extract_tokens", spy)
    probe = ProbeConfig(epochs=3, eval_every=3, val_fraction=0.34)
    res = run_frozen(encoder_file, toy_root, frozen.PROTOCOLS, probe=probe, split="val")
    query_ids, gallery_ids, train_ids = seen
    # Evaluation on held-out training identities; the probe trains on the remaining ones; test ids never read.
    assert query_ids and query_ids <= gallery_ids and not (query_ids | gallery_ids) & train_ids
    assert query_ids | gallery_ids | train_ids == {1, 2, 3, 4, 5, 6}
    assert res["knn_cls"]["num_queries"] >= 1 and 0.0 <= res["linear_probe"]["mAP"] <= 100.0
    with pytest.raises(ValueError, match="valid: test, val"):
        run_frozen(encoder_file, toy_root, "knn_cls", split="train")


def test_cli_split_val(toy_root, encoder_file, capsys) -> None:
    argv = ["probe", "--checkpoint", str(encoder_file), "--root", str(toy_root), "--protocols", "knn_cls"]
    assert main([*argv, "--split", "val"]) == 0
    assert "split: val" in capsys.readouterr().out
