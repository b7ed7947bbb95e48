#!/usr/bin/env bash
# The main job end to end on the embedded toy world (offline, CPU): `make demo [DATA=data/toy]`.
# Runs inside the offline environment (the Makefile calls it through `python -m data_manifests.runtime`).
set -euo pipefail
DATA=${1:-data/toy}
BIN=.venv/bin
CONFIG=configs/pipeline/toy.yaml
step() { printf '\n==> %s\n' "$*"; }

step "1. Toy world: procedural vehicles with exact view masks -> $DATA/world"
$BIN/diffveri toyworld --out "$DATA/world" --identities 12 --images-per-identity 16 --size 128 --seed 0 --no-progress

step "2. Local toy models: tiny Stable Diffusion, YOLO11n detector, SAM view segmenter (skipped when present)"
[ -f "$DATA/models/tiny-sd/model_index.json" ] || $BIN/diffveri models build-toy --root "$DATA"
[ -f "$DATA/models/toy-yolo.pt" ] || $BIN/diffveri toyworld-detector --root "$DATA/world" --out "$DATA/models/toy-yolo.pt"
$BIN/diffveri segment finetune --config "$CONFIG" --root "$DATA/world"

step "3. Prefect server + worker + deployments"
$BIN/python -m flows.server up --data "$DATA"
trap '$BIN/python -m flows.server down' EXIT

step "4. prefect deployment run build-diffveri/toy --watch"
$BIN/prefect deployment run build-diffveri/toy --watch

step "5. The dataset"
$BIN/diffveri manifests validate "$DATA"
$BIN/diffveri manifests stats "$DATA"

step "6. VehicleMAE pre-training on the assembled DiffVERI table, export, evaluation on the toy VeRi layout"
RUN="$DATA/runs/vehiclemae-demo"
$BIN/vehiclemae train --config configs/vehiclemae/toy.yaml --set data.root="$DATA" --set output_dir="$RUN"
$BIN/vehiclemae export --checkpoint "$RUN" --out "$RUN/encoder.safetensors"
$BIN/vehiclemae eval --checkpoint "$RUN/encoder.safetensors" --dataset veri776 --root "$DATA/world/VeRi"
step "done: dataset under $DATA, pre-training run under $RUN"
