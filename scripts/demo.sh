#!/usr/bin/env bash
# The main job end to end on the embedded toy world (offline, CPU): `make demo [DATA=data/toy]`.
# Runs inside the offline environment (the Makefile calls it through `python -m data_manifests.runtime`).
# Re-running resumes: finished steps are skipped or cached.
set -euo pipefail
DATA=$(mkdir -p "${1:-data/toy}" && cd "${1:-data/toy}" && pwd)
BIN=.venv/bin
CONFIG=configs/pipeline/toy.yaml
TOY_MODELS=${TOY_MODELS:-models/toy}   # trained once by `make toy-models` (committed; docs/pipeline.md#toy-models)
step() { printf '\n==> %s\n' "$*"; }

step "1/7 Toy world: procedural vehicles with exact view masks -> $DATA/world"
$BIN/diffveri toy world --root "$DATA/world" --identities 10 --images-per-identity 16 --size 128 --seed 0 \
  --detection-images 16 --no-progress

step "2/7 Toy models: YOLO11n vehicle detector and SAM view segmenter from $TOY_MODELS (make toy-models)"
if [ ! -f "$TOY_MODELS/toy-yolo.pt" ] || [ ! -f "$TOY_MODELS/sam_view.pt" ]; then
  echo "$TOY_MODELS has no trained toy models: training them now (make toy-models, about 25 minutes on 2 cores)"
  $BIN/diffveri toy models --out "$TOY_MODELS" --no-progress
fi
install_model() {  # copy $1 to $2 unless identical
  cmp -s "$1" "$2" && return 0
  # Stages resume by image: rows made with the old model stay. Say so rather than mix models silently.
  [ -f "$2" ] && echo "note: replacing $2 with $1; images filtered or segmented before keep their rows" \
    "(delete $DATA to rebuild them with the new model)"
  mkdir -p "$(dirname "$2")" && cp "$1" "$2"
}
install_model "$TOY_MODELS/toy-yolo.pt" "$DATA/models/toy-yolo.pt"
install_model "$TOY_MODELS/sam_view.pt" "$DATA/models/segment/sam_view.pt"
# (the tiny Stable Diffusion pipeline is built by the dreambooth stage: models.build_tiny_if_missing)

step "3/7 Prefect: local server, process worker, deployments build-diffveri/toy and build-diffveri/paper"
$BIN/python -m flows.server up --data "$DATA"
trap '$BIN/python -m flows.server down' EXIT

step "4/7 prefect deployment run build-diffveri/toy --watch"
$BIN/prefect deployment run build-diffveri/toy --watch

step "5/7 The dataset"
$BIN/diffveri manifests validate --root "$DATA"
$BIN/diffveri manifests stats --root "$DATA"

step "6/7 VehicleMAE pre-training on the assembled DiffVERI table, export, evaluation on the toy VeRi layout"
RUN="$DATA/runs/vehiclemae-demo"
# One torch thread: with another job on one of the two cores, two threads spin-wait and a step takes ~8 s, not 0.3.
export OMP_NUM_THREADS=1
# (A re-run resumes from $RUN/checkpoints/checkpoint-last.pt.)
$BIN/vehiclemae train --config configs/vehiclemae/toy.yaml --set data.root="$DATA" --set output_dir="$RUN"
$BIN/vehiclemae export --checkpoint "$RUN" --out "$RUN/encoder.safetensors"
$BIN/vehiclemae eval --checkpoint "$RUN/encoder.safetensors" --dataset veri776 --root "$DATA/world/VeRi" \
  --out "$RUN/eval_veri_toy.json"

step "7/7 The dataset against the toy world's truth (segments_gt): filter keep/reject, dominant views, contact sheet"
$BIN/diffveri truth --root "$DATA" --config "$CONFIG" --out "$DATA/reports/truth.json" \
  --sheet "$DATA/reports/dataset_sheet.png"
step "done: dataset in $DATA (stats.md, export/VeRi, reports/), pre-training run in $RUN"
