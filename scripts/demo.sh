#!/usr/bin/env bash
# The main job end to end on the embedded toy world (offline, CPU): `make demo [DATA=data/toy]`.
# Runs inside the offline environment (the Makefile calls it through `python -m data_manifests.runtime`).
# Re-running resumes: finished steps are skipped or cached.
set -euo pipefail
DATA=$(mkdir -p "${1:-data/toy}" && cd "${1:-data/toy}" && pwd)
BIN=.venv/bin
CONFIG=configs/pipeline/toy.yaml
step() { printf '\n==> %s\n' "$*"; }

step "1/6 Toy world: procedural vehicles with exact view masks -> $DATA/world"
$BIN/diffveri toyworld --out "$DATA/world" --identities 10 --images-per-identity 16 --size 128 --seed 0 \
  --detection-images 300 --no-progress

step "2/6 Toy models: YOLO11n vehicle detector and SAM view segmenter, trained on the toy world (skipped when present)"
[ -f "$DATA/models/toy-yolo.pt" ] || $BIN/diffveri toyworld-detector --root "$DATA/world" \
  --out "$DATA/models/toy-yolo.pt" --epochs 20
[ -f "$DATA/models/segment/sam_view.pt" ] || $BIN/diffveri segment finetune --config "$CONFIG" --root "$DATA/world" \
  --set segment.finetune.steps=300 --set segment.finetune.out_dir="$DATA/models/segment" \
  --set segment.checkpoint="$DATA/models/segment/sam_view.pt"
# (the tiny Stable Diffusion pipeline is built by the dreambooth stage: models.build_tiny_if_missing)

step "3/6 Prefect: local server, process worker, deployments build-diffveri/toy and build-diffveri/paper"
$BIN/python -m flows.server up --data "$DATA"
trap '$BIN/python -m flows.server down' EXIT

step "4/6 prefect deployment run build-diffveri/toy --watch"
$BIN/prefect deployment run build-diffveri/toy --watch

step "5/6 The dataset"
$BIN/diffveri manifests validate "$DATA"
$BIN/diffveri manifests stats "$DATA"

step "6/6 VehicleMAE pre-training on the assembled DiffVERI table, export, evaluation on the toy VeRi layout"
RUN="$DATA/runs/vehiclemae-demo"
$BIN/vehiclemae train --config configs/vehiclemae/toy.yaml --set data.root="$DATA" --set output_dir="$RUN" \
  $( [ -f "$RUN/checkpoints/checkpoint-last.pt" ] && echo --resume )
$BIN/vehiclemae export --checkpoint "$RUN" --out "$RUN/encoder.safetensors" --force  # the demo's own output
$BIN/vehiclemae eval --checkpoint "$RUN/encoder.safetensors" --dataset veri776 --root "$DATA/world/VeRi" \
  --json "$RUN/eval_veri_toy.json"
step "done: dataset in $DATA (stats.md, export/VeRi), pre-training run in $RUN"
