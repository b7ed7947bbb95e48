"""VeRi-776 / VehicleID parsers and the VehicleID protocol."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.reid.layouts import make_vehicleid, make_veri
from vehiclemae.reid.data import ReIDImageDataset, build_transforms, load_vehicleid, load_veri776, relabel
from vehiclemae.reid.vehicleid import evaluate_vehicleid, vehicleid_trial_split


def test_veri_parser(tmp_path) -> None:
    split = load_veri776(make_veri(tmp_path / "VeRi"))
    assert len(split.train) == 6 * 3 * 2
    assert len(split.query) == 5 and len(split.gallery) == 5 * 3 * 2 - 5
    q = split.query[0]
    assert (q.pid, q.camid) == (7, 1)
    assert {s.camid for s in split.gallery} == {1, 2, 3}
    labels, mapping = relabel(split.train)
    assert labels.min() == 0 and labels.max() == 5 and mapping[1] == 0
    assert "train 36 images / 6 ids" in split.summary()


def test_veri_wrong_root_names_the_fix(tmp_path) -> None:
    make_veri(tmp_path / "VeRi", train_ids=1, test_ids=1, cams=2, per_cam=1)
    with pytest.raises(FileNotFoundError, match=r"missing image_train.*did you mean --root .*VeRi"):
        load_veri776(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_veri776(tmp_path / "nope")
    (tmp_path / "VeRi" / "image_train" / "car.jpg").write_bytes(b"")
    with pytest.raises(ValueError, match=r"car\.jpg: not a VeRi-776 image name"):
        load_veri776(tmp_path / "VeRi")


def test_vehicleid_parser_and_errors(tmp_path) -> None:
    root = make_vehicleid(tmp_path / "VehicleID_V1.0")
    split = load_vehicleid(root)
    assert split.test_size == 4 and len(split.test) == 16 and len(split.train) == 24
    assert load_vehicleid(root, 8).test_size == 8
    with pytest.raises(ValueError, match=r"no test_list_800\.txt; available test sizes: \[4, 8\]"):
        load_vehicleid(root, 800)
    with pytest.raises(FileNotFoundError, match="did you mean --root"):
        load_vehicleid(tmp_path)
    (root / "train_test_split" / "test_list_4.txt").write_text("0000001\n")
    with pytest.raises(ValueError, match=r"test_list_4\.txt:1: expected '<image name> <vehicle id>'"):
        load_vehicleid(root, 4)


def test_image_dataset_items(tmp_path) -> None:
    split = load_veri776(make_veri(tmp_path, train_ids=2, test_ids=1, cams=2, per_cam=1))
    labels, _ = relabel(split.train)
    ds = ReIDImageDataset(split.train, build_transforms(32, True, (0.5,) * 3, (0.5,) * 3), labels)
    item = ds[1]
    assert item["image"].shape == (3, 32, 32)
    assert int(item["label"]) == labels[1] and int(item["index"]) == 1
    with pytest.raises(ValueError, match="3 labels for 4 samples"):
        ds.set_labels(np.zeros(3))


@pytest.mark.parametrize("hflip, left_brighter", [(0.0, True), (1.0, False)])
def test_training_flip_follows_hflip(hflip: float, left_brighter: bool) -> None:
    """``hflip=0`` never mirrors a training image (the toy world's left and right cues differ); 1 always does.
    Pad/crop shifts by at most 2 px and random erasing greys out at most a third, so the sides stay ordered."""
    from PIL import Image

    pixels = np.zeros((32, 32, 3), np.uint8)
    pixels[:, :16] = 255
    image = Image.fromarray(pixels)
    transform = build_transforms(32, True, (0.5,) * 3, (0.5,) * 3, hflip=hflip)
    torch.manual_seed(0)
    for _ in range(20):
        x = transform(image)
        assert (x[:, :, :16].mean() > x[:, :, 16:].mean()) == left_brighter


def test_vehicleid_trials_are_deterministic_and_one_gallery_image_per_id() -> None:
    pids = np.repeat(np.arange(10), 5)
    a = vehicleid_trial_split(pids, seed=3, trial=2)
    b = vehicleid_trial_split(pids, seed=3, trial=2)
    c = vehicleid_trial_split(pids, seed=3, trial=3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[1], c[1])
    q, g = a
    assert sorted(pids[g].tolist()) == list(range(10))
    assert len(q) == 40 and not set(q) & set(g)


def test_evaluate_vehicleid_averages_trials() -> None:
    gen = torch.Generator().manual_seed(0)
    pids = np.repeat(np.arange(12), 4)
    feats = torch.randn(12, 8, generator=gen)[torch.from_numpy(pids)] + 0.3 * torch.randn(48, 8, generator=gen)
    out = evaluate_vehicleid(feats, pids, num_trials=10, seed=1)
    again = evaluate_vehicleid(feats, pids, num_trials=10, seed=1)
    assert out["Rank-1"] == again["Rank-1"] and out["num_trials"] == 10 and len(out["trials"]) == 10
    assert out["Rank-1"] == pytest.approx(np.mean([t["Rank-1"] for t in out["trials"]]))
    assert 90.0 <= out["Rank-1"] <= 100.0 and out["Rank-5"] >= out["Rank-1"]
    assert out["num_query"] == 36 and out["num_gallery"] == 12
    rr = evaluate_vehicleid(feats, pids, num_trials=2, rerank={"k1": 4, "k2": 2, "lambda_value": 0.3})
    assert 0.0 <= rr["mAP"] <= 100.0


def test_parsers_on_a_toy_world_export(tmp_path) -> None:
    """The toy world's VeRi and VehicleID layouts parse and satisfy both protocols."""
    from pipeline.toyworld.export import ToyworldSettings, build_toyworld
    from vehiclemae.reid.data import vehicleid_test_sizes

    settings = ToyworldSettings(identities=4, images_per_identity=8, size=32, seed=0, detection_images=1)
    build_toyworld(tmp_path, settings, progress=False)
    veri = load_veri776(tmp_path / "VeRi")
    assert veri.train and veri.query and veri.gallery
    assert not {s.pid for s in veri.train} & {s.pid for s in veri.query}  # identity-disjoint splits
    for q in veri.query:  # every query keeps a same-id gallery image on another camera (VeRi protocol)
        assert any(g.pid == q.pid and g.camid != q.camid for g in veri.gallery)
    sizes = vehicleid_test_sizes(tmp_path / "VehicleID_V1.0")
    vid = load_vehicleid(tmp_path / "VehicleID_V1.0", sizes[-1])
    assert vid.test and all(s.path.is_file() for s in vid.test)
