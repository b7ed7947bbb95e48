#!/usr/bin/env bash
# The paper's comparison on the toy world: pre-train `mae` and `vehiclemae` with equal budgets (and `none`: no
# pre-training), fine-tune each on the toy VeRi layout supervised and unsupervised, print the paper-style table.
#
#   bash scripts/reproduce_toy.sh [DATA_DIR]          (make reproduce-toy runs it through the offline runtime)
#
# Environment knobs (defaults in brackets): RUNS [runs/reproduce-toy], IDENTITIES [24], IMAGES [16], SIZE [64],
# PRETRAIN_EPOCHS [10], FINETUNE_EPOCHS [6], UNSUP_EPOCHS [4], VEHICLEID [0] (1: also fine-tune on the VehicleID
# layout), SEED [0]. Every step is skipped when its output exists, so an interrupted run resumes.
set -euo pipefail

DATA=${1:-data/toy}
RUNS=${RUNS:-runs/reproduce-toy}
IDENTITIES=${IDENTITIES:-24}
IMAGES=${IMAGES:-16}
SIZE=${SIZE:-64}
PRETRAIN_EPOCHS=${PRETRAIN_EPOCHS:-10}
FINETUNE_EPOCHS=${FINETUNE_EPOCHS:-6}
UNSUP_EPOCHS=${UNSUP_EPOCHS:-4}
VEHICLEID=${VEHICLEID:-0}
SEED=${SEED:-0}
BIN=${BIN:-.venv/bin}
mkdir -p "$RUNS"

# 1. The toy world: diffveri manifests (pre-training data) and the VeRi / VehicleID layouts (Re-ID benchmark).
#    Pre-training reads only the diffveri train split, whose identities are disjoint from the Re-ID test ids.
if [ ! -d "$DATA/VeRi" ]; then
  "$BIN/diffveri" toyworld --out "$DATA" --identities "$IDENTITIES" --images-per-identity "$IMAGES" \
    --size "$SIZE" --seed "$SEED" --no-progress
fi

# 2. Pre-training with equal budgets (same epochs, batch, model and data for both methods).
for method in mae vehiclemae; do
  out="$RUNS/pretrain-$method"
  if [ ! -f "$out/encoder.safetensors" ]; then
    resume=()
    [ -f "$out/checkpoints/checkpoint-last.pt" ] && resume=(--resume)  # an interrupted run continues its schedule
    "$BIN/vehiclemae" train --config configs/vehiclemae/toy.yaml --set method.mode="$method" \
      --set output_dir="$out" --set data.root="$DATA" --set epochs="$PRETRAIN_EPOCHS" --set seed="$SEED" \
      ${resume[@]+"${resume[@]}"}
    "$BIN/vehiclemae" export --checkpoint "$out/checkpoints/checkpoint-last.pt" --out "$out/encoder.safetensors"
  fi
done

# 3a. The pre-trained encoders as they are (class-token feature, no fine-tuning) on the toy VeRi layout.
for method in mae vehiclemae; do
  if [ ! -f "$RUNS/zeroshot-$method.json" ]; then
    "$BIN/vehiclemae" eval --checkpoint "$RUNS/pretrain-$method/encoder.safetensors" --dataset veri776 \
      --root "$DATA/VeRi" --name "$method" --json "$RUNS/zeroshot-$method.json" > "$RUNS/zeroshot-$method.log" 2>&1
  fi
done

# 3b. Fine-tuning: every initialisation x {supervised, unsupervised} (x VehicleID when asked).
datasets="veri776"
[ "$VEHICLEID" = "1" ] && datasets="veri776 vehicleid"
for dataset in $datasets; do
  if [ "$dataset" = "veri776" ]; then root="$DATA/VeRi"; suffix=""; else root="$DATA/VehicleID_V1.0"; suffix="-vehicleid"; fi
  for init in none mae vehiclemae; do
    if [ "$init" = "none" ]; then
      init_args=(--set model.init=scratch)
    else
      init_args=(--set model.init=export --set model.init_path="$RUNS/pretrain-$init/encoder.safetensors")
    fi
    for mode in supervised unsupervised; do
      out="$RUNS/ft-$init-$mode$suffix"
      epochs=$FINETUNE_EPOCHS
      [ "$mode" = "unsupervised" ] && epochs=$UNSUP_EPOCHS
      if [ ! -f "$out/result.json" ]; then
        "$BIN/vehiclemae" finetune --config configs/vehiclemae/finetune_toy.yaml --mode "$mode" --output-dir "$out" --resume \
          --set data.dataset="$dataset" --set data.root="$root" --set optim.epochs="$epochs" --set seed="$SEED" \
          "${init_args[@]}" > "$out.log" 2>&1 || { echo "fine-tuning $out failed; see $out.log" >&2; exit 1; }
      fi
    done
  done
done

# 4. The table (best epoch of each run), also written to RUNS/table.md.
"$BIN/python" -m vehiclemae.benchmarks.report "$RUNS" --markdown "$RUNS/table.md"
