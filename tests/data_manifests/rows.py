"""One valid example row per manifest table, for tests."""

from __future__ import annotations

import datetime as dt

from data_manifests import rle

_RLE = rle.encode([[0, 1], [1, 1]])


def example_row(table: str, i: int = 0) -> dict:
    rows = {
        "subjects": {
            "identity_id": f"id{i}",
            "class_name": "sedan",
            "token": "sks",
            "instance_images": [f"img/{i}.png"],
            "source": "toyworld",
            "attributes": '{"colour": "red"}',
            "status": "ok",
        },
        "dreambooth": {
            "identity_id": f"id{i}",
            "base_model": "models/sd",
            "lora_path": f"lora/{i}.safetensors",
            "lora_sha256": "ab" * 32,
            "steps": 10,
            "final_loss": 0.1,
            "seconds": 1.5,
            "status": "ok",
        },
        "generations": {
            "image_id": f"g{i}",
            "identity_id": f"id{i}",
            "intended_view": "front",
            "prompt": "a photo",
            "seed": i,
            "steps": 10,
            "guidance": 7.5,
            "width": 64,
            "height": 64,
            "path": f"img/{i}.png",
            "sha256": "cd" * 32,
            "model_ref": "toyworld",
            "status": "ok",
        },
        "detections": {
            "image_id": f"g{i}",
            "n_vehicles": 1,
            "bbox": [1.0, 2.0, 30.0, 40.0],
            "conf": 0.9,
            "cls": 2,
            "crop_path": f"img/{i}.png",
            "detector_ref": "yolo",
            "status": "ok",
        },
        "reviews": {
            "image_id": f"g{i}",
            "batch_id": "b0",
            "decision": "accept",
            "view_label": "front",
            "identity_ok": True,
            "reviewer": "ann",
            "reviewed_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
            "status": "ok",
        },
        "segments": {
            "image_id": f"g{i}",
            "bbox": [0.0, 0.0, 2.0, 2.0],
            "vehicle_rle": _RLE,
            "view_classes": ["background", "front"],
            "view_rles": [_RLE, _RLE],
            "view_fractions": [0.0, 1.0],
            "dominant_view": "front",
            "segmenter_ref": "groundtruth",
            "status": "ok",
        },
        "diffveri": {
            "image_id": f"g{i}",
            "identity_id": f"id{i}",
            "split": "train",
            "path": f"img/{i}.png",
            "width": 64,
            "height": 64,
            "dominant_view": "front",
            "vehicle_rle": _RLE,
            "view_classes": ["background", "front"],
            "view_rles": [_RLE, _RLE],
            "status": "ok",
        },
    }
    rows["segments_gt"] = rows["segments"]
    return dict(rows[table])
