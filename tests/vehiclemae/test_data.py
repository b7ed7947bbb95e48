from __future__ import annotations

import copy
import gc
import pickle
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch
from PIL import Image

from data_manifests import VIEW_CLASSES_TOYWORLD, read_rows, rle, write_table
from pipeline.toyworld.synthetic import write_diffveri
from vehiclemae.data import DiffVERIDataset, PKSampler
from vehiclemae.data.diffveri import COLUMNS
from vehiclemae.data.rowstore import RowStore, RowStoreWriter


def test_items_shapes_and_consistency(diffveri_root: Path) -> None:
    ds = DiffVERIDataset(diffveri_root, img_size=32, view_classes="toyworld", patch_size=8, mask_ratio=0.75)
    assert len(ds) == 24 and len(ds.identities) == 6
    item = ds[3]
    assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.float32
    assert item["labels"].shape == (32, 32) and item["labels"].dtype == torch.int64
    assert item["keep_a"].shape == item["keep_b"].shape == (4,)
    assert not set(item["keep_a"].tolist()) & set(item["keep_b"].tolist())
    assert int(item["labels"].max()) < len(VIEW_CLASSES_TOYWORLD)
    # the toy world's fg mask is exactly the non-background labels (nearest resampling keeps them aligned)
    assert torch.equal(item["fg"] > 0, item["labels"] > 0)


def test_items_depend_only_on_seed_epoch_index(diffveri_root: Path) -> None:
    a = DiffVERIDataset(diffveri_root, img_size=32, view_classes="toyworld", patch_size=8, mask_ratio=0.75)
    b = DiffVERIDataset(diffveri_root, img_size=32, view_classes="toyworld", patch_size=8, mask_ratio=0.75)
    for key in ("image", "labels", "keep_a"):
        assert torch.equal(a[5][key], b[5][key])
    b.set_epoch(1)
    assert not torch.equal(a[5]["keep_a"], b[5]["keep_a"])


def _one_row(root: Path, labels: np.ndarray, image: np.ndarray, classes: tuple[str, ...]) -> None:
    (root / "img").mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(root / "img" / "a.png")
    present = list(range(len(classes)))
    write_table(
        root,
        "diffveri",
        [
            {
                "image_id": "a",
                "identity_id": "v1",
                "split": "train",
                "path": "img/a.png",
                "width": labels.shape[1],
                "height": labels.shape[0],
                "vehicle_rle": rle.encode(labels > 0),
                "view_classes": [classes[c] for c in present],
                "view_rles": [rle.encode(labels == c) for c in present],
                "status": "ok",
            }
        ],
    )


def test_flip_swaps_left_and_right(tmp_path: Path) -> None:
    labels = np.zeros((32, 32), np.int64)
    labels[8:24, 2:14] = VIEW_CLASSES_TOYWORLD.index("left")
    labels[8:24, 18:30] = VIEW_CLASSES_TOYWORLD.index("front")
    image = np.zeros((32, 32, 3), np.uint8)
    image[:, :16] = 200
    _one_row(tmp_path, labels, image, VIEW_CLASSES_TOYWORLD)
    common = dict(img_size=32, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    flipped = DiffVERIDataset(tmp_path, view_classes="toyworld", hflip=1.0, **common)[0]
    expected = labels[:, ::-1].copy()
    expected[expected == VIEW_CLASSES_TOYWORLD.index("left")] = VIEW_CLASSES_TOYWORLD.index("right")
    assert np.array_equal(flipped["labels"].numpy(), expected)
    assert flipped["image"][0, 0, -1] > flipped["image"][0, 0, 0]  # the bright half moved right
    # PVEN classes have one "side": the flip keeps it, and toy-world left/right collapse to it
    pven = DiffVERIDataset(tmp_path, view_classes="pven", hflip=1.0, **common)[0]
    assert set(pven["labels"].unique().tolist()) == {0, 1, 3}
    assert (pven["labels"][8:24, 18:30] == 3).all()


def test_unknown_view_class_is_a_clear_error(tmp_path: Path) -> None:
    labels = np.zeros((16, 16), np.int64)
    labels[4:12, 4:12] = 1
    _one_row(tmp_path, labels, np.zeros((16, 16, 3), np.uint8), ("background", "top"))
    with pytest.raises(ValueError, match="image_id='a'.*not in the training classes"):
        DiffVERIDataset(tmp_path, view_classes=("background", "front"), img_size=16)[0]


def test_empty_table_error_names_the_fix(tmp_path: Path, diffveri_root: Path) -> None:
    with pytest.raises(ValueError, match="no rows with status 'ok'"):
        DiffVERIDataset(diffveri_root, splits=("query",))


def test_pk_sampler_batches() -> None:
    labels = np.repeat(np.arange(7), [4, 4, 4, 2, 9, 4, 1])
    sampler = PKSampler(labels, p=3, k=4, seed=1)
    order = list(sampler)
    assert len(order) == len(sampler) and len(order) % 12 == 0
    for start in range(0, len(order), 12):
        counts = Counter(labels[order[start : start + 12]].tolist())
        assert len(counts) == 3 and set(counts.values()) == {4}
    assert order == list(PKSampler(labels, p=3, k=4, seed=1))
    sampler.set_epoch(1)
    assert list(sampler) != order
    with pytest.raises(ValueError, match="at least P=8 identities"):
        PKSampler(labels, p=8, k=2)


def test_vehicle_crop_cuts_items_from_the_vehicle_box(tmp_path: Path) -> None:
    # A 40x40 image whose vehicle is the box x 10..30, y 16..24 (white); outside it is black.
    labels = np.zeros((40, 40), dtype=np.int64)
    labels[16:24, 10:30] = 1
    image = np.zeros((40, 40, 3), dtype=np.uint8)
    image[labels > 0] = 255
    _one_row(tmp_path, labels, image, ("background", "front"))
    plain = DiffVERIDataset(tmp_path, img_size=16, view_classes="pven", augment=False)
    assert plain.region(labels > 0) == (0.0, 0.0, 40.0, 40.0)
    crop = DiffVERIDataset(tmp_path, img_size=16, view_classes="pven", augment=False, vehicle_crop=0.0)
    assert crop.region(labels > 0) == (10.0, 16.0, 30.0, 24.0)
    item = crop[0]
    assert bool((item["fg"] > 0).all())  # the whole item is vehicle: nothing of the background is left
    grown = DiffVERIDataset(tmp_path, img_size=16, view_classes="pven", augment=False, vehicle_crop=0.5)
    assert grown.region(labels > 0) == (0.0, 12.0, 40.0, 28.0)  # +10 px wide (clipped at 0 and 40), +4 px high
    # Augmented items are drawn inside the box: every pixel of every epoch's item is vehicle.
    aug = DiffVERIDataset(tmp_path, img_size=16, view_classes="pven", vehicle_crop=0.0, hflip=0.5)
    for epoch in range(4):
        aug.set_epoch(epoch)
        assert bool((aug[0]["fg"] > 0).all())
    # A fractional region (margin 0.13 of a 20 x 8 box) never yields a box outside the image (PIL would refuse it).
    odd = DiffVERIDataset(tmp_path, img_size=16, view_classes="pven", vehicle_crop=0.13, scale=(0.9, 1.0))
    for epoch in range(20):
        odd.set_epoch(epoch)
        assert odd[0]["image"].shape == (3, 16, 16)
    with pytest.raises(ValueError, match="margin >= 0"):
        DiffVERIDataset(tmp_path, img_size=16, view_classes="pven", vehicle_crop=-0.1)


def test_no_vehicle_crop_keeps_items_unchanged(diffveri_root: Path) -> None:
    # The whole-image path draws exactly the crops it drew before vehicle_crop existed (same generator calls).
    from vehiclemae.data.transforms import apply_joint, sample_crop

    ds = DiffVERIDataset(diffveri_root, img_size=32, view_classes="toyworld")
    image, labels, fg = ds.load(2)
    params = sample_crop(np.random.default_rng([0, 0, 2]), image.width, image.height, ds.scale, ds.ratio, ds.hflip)
    img, _, _ = apply_joint(image, labels, fg, params, 32, ds.flip_lut)
    expected = (img.transpose(2, 0, 1).astype(np.float32) / 255.0 - ds.mean) / ds.std
    assert torch.equal(ds[2]["image"], torch.from_numpy(expected))


# ------------------------------------------------------------------------------ rows kept as flat files, not dicts
def _mixed_table(root: Path) -> list[dict]:
    """Rows in shuffled id order: ok train rows (one without masks, one without a vehicle mask), a failed row and a
    row of another split (both left out)."""
    base = write_diffveri(root, identities=3, size=32)
    rows = read_rows(base, "diffveri")
    rows[0]["view_rles"], rows[0]["view_classes"] = [], []
    rows[1]["vehicle_rle"] = None
    rows[2]["status"] = "failed"
    rows[3]["split"] = "query"
    order = np.random.default_rng(3).permutation(len(rows))
    write_table(base, "diffveri", [rows[i] for i in order])
    return rows


def test_rows_equal_the_old_dict_decoding_row_for_row(tmp_path: Path) -> None:
    _mixed_table(tmp_path)
    ds = DiffVERIDataset(tmp_path, img_size=32, view_classes="toyworld", patch_size=8, mask_ratio=0.75)
    # The old dataset: every ok train row as a dict (to_pylist), sorted by image_id; identities sorted.
    old = sorted(
        (r for r in read_rows(tmp_path, "diffveri", columns=COLUMNS + ["status"]) if r["status"] == "ok"),
        key=lambda r: r["image_id"],
    )
    old = [{k: v for k, v in r.items() if k != "status" and r["split"] == "train"} for r in old]
    old = [r for r in old if r]
    identities = sorted({r["identity_id"] for r in old})
    assert len(ds) == len(old) == 10 and ds.identities == identities
    for i, row in enumerate(old):
        assert ds.row(i) == ds.rows[i] == row
        assert int(ds[i]["identity"]) == identities.index(row["identity_id"])
    assert ds.row(-1) == old[-1]
    assert ds.identity_index.tolist() == [identities.index(r["identity_id"]) for r in old]
    none = ds[[r["vehicle_rle"] is None for r in old].index(True)]  # no vehicle mask: fg = labelled pixels
    assert torch.equal(none["fg"] > 0, none["labels"] > 0)
    limited = DiffVERIDataset(tmp_path, img_size=32, view_classes="toyworld", limit=4)
    assert [limited.row(i) for i in range(4)] == old[:4]
    with pytest.raises(IndexError):
        ds.row(len(ds))


def test_pickled_dataset_is_small_and_gives_the_same_items(tmp_path: Path) -> None:
    write_diffveri(tmp_path / "small", identities=2, size=32)
    rows = read_rows(tmp_path / "small", "diffveri")
    big = [{**r, "image_id": f"{r['image_id']}{k:03d}"} for k in range(300) for r in rows]  # 2400 rows
    write_diffveri(tmp_path / "big", identities=2, size=32)
    write_table(tmp_path / "big", "diffveri", big)
    sizes = {}
    for name in ("small", "big"):
        ds = DiffVERIDataset(tmp_path / name, img_size=32, view_classes="toyworld", patch_size=8, mask_ratio=0.75)
        blob = pickle.dumps(ds)
        sizes[name] = len(blob)
        copy = pickle.loads(blob)  # what a DataLoader worker gets
        for i in (0, len(ds) // 2, len(ds) - 1):
            for key in ("image", "labels", "fg", "identity", "keep_a", "keep_b"):
                assert torch.equal(copy[i][key], ds[i][key])
        assert copy.identities == ds.identities
    assert sizes["big"] < 4096 and sizes["big"] - sizes["small"] < 64  # the rows are not in the pickle


def test_row_files_go_with_the_dataset(diffveri_root: Path) -> None:
    ds = DiffVERIDataset(diffveri_root, img_size=32, view_classes="toyworld")
    files = ds._files
    plain = copy.copy(ds)  # the collapse probe's shallow copy shares the files
    del ds
    gc.collect()
    assert files.is_dir() and plain.row(0)["image_id"]
    del plain
    gc.collect()
    assert not files.exists()


def test_row_store_round_trips_nested_columns_with_nulls(tmp_path: Path) -> None:
    rle_type = pa.struct([pa.field("size", pa.list_(pa.int32())), pa.field("counts", pa.string())])
    schema = pa.schema([("s", pa.string()), ("n", pa.int32()), ("r", rle_type), ("l", pa.list_(rle_type))])
    rows = [
        {"s": "é", "n": 1, "r": {"size": [2, 3], "counts": "ab"}, "l": [{"size": [1, 1], "counts": ""}]},
        {"s": None, "n": None, "r": None, "l": None},
        {"s": "", "n": -5, "r": {"size": None, "counts": None}, "l": []},
        {"s": "x" * 300, "n": 7, "r": {"size": [], "counts": "z"}, "l": [None, {"size": [4], "counts": "q"}]},
    ]
    table = pa.Table.from_pylist(rows * 3, schema=schema)
    writer = RowStoreWriter(tmp_path / "store", schema)
    writer.write_batch(table.slice(0, 5))  # sliced arrays: offsets must be rebased
    writer.write_batch(table.slice(5))
    writer.close()
    store = RowStore(tmp_path / "store")
    assert len(store) == 12 and [store.row(i) for i in range(12)] == table.to_pylist()
    assert pickle.loads(pickle.dumps(store)).row(3) == rows[3]
