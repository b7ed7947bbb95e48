#!/usr/bin/env bash
# Pre-training settings chosen on validation identities (never the test split): pre-train one setting on the
# pre-training world, export its encoder, run the frozen protocols with `vehiclemae probe --split val`.
#
#   scripts/sweep_val.sh NAME EPOCHS SEED [KEY=VALUE ...]    (KEY=VALUE: configs/vehiclemae/toy.yaml overrides)
#
# Environment: POOL (pre-training data root, default data/reproduce-toy-full/pretrain-world), BENCH (VeRi layout of
# the benchmark world, default data/reproduce-toy-quick/world/VeRi), OUT (default runs/sweep-val). Finished steps are
# skipped, so a killed sweep resumes. The PPMD settings in docs/vehiclemae.md came from:
#   scripts/sweep_val.sh mae6 6 0 method.mode=mae
#   scripts/sweep_val.sh c10 6 0 method.mode=vehiclemae method.ppmd_ramp_epochs=2 method.ppmd_weight=1.0
#   (c01, c03: ppmd_weight 0.1 / 0.3; s01: ppmd_target=same_patches ppmd_weight=0.1; c03nopred: ppmd_predictor=false;
#    c03nocenter: ppmd_center=false; c03ramp1: ppmd_ramp_epochs=1)
# and, with 3 seeds S in 0 1 2 from the default (weight 1.0, ramp 2 at the time), one knob at a time:
#   V="method.mode=vehiclemae method.ppmd_weight=1.0 method.ppmd_ramp_epochs=2"
#   scripts/sweep_val.sh c10-sS 6 S $V                       (the default)
#   scripts/sweep_val.sh c10nopred-sS 6 S $V method.ppmd_predictor=false
#   scripts/sweep_val.sh c10nocenter-sS 6 S $V method.ppmd_center=false
#   scripts/sweep_val.sh c10ramp1-sS 6 S $V method.ppmd_ramp_epochs=1
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=$1; EPOCHS=$2; SEED=$3; shift 3
POOL=${POOL:-data/reproduce-toy-full/pretrain-world}
BENCH=${BENCH:-data/reproduce-toy-quick/world/VeRi}
OUT=${OUT:-runs/sweep-val}/$NAME
R=".venv/bin/python -m data_manifests.runtime --"
sets=(); for o in "$@"; do sets+=(--set "$o"); done
mkdir -p "$(dirname "$OUT")"
ck=$OUT/checkpoints/checkpoint-$(printf %04d "$EPOCHS").pt
if [ ! -f "$ck" ]; then
  $R .venv/bin/vehiclemae train --config configs/vehiclemae/toy.yaml --set output_dir="$OUT" --set data.root="$POOL" \
    --set "data.splits=[train,query,gallery]" --set epochs="$EPOCHS" --set checkpoint_every="$EPOCHS" \
    --set seed="$SEED" "${sets[@]}" \
    > "$OUT.log" 2>&1 || { echo "pre-training $NAME failed; see $OUT.log" >&2; exit 1; }
fi
[ -f "$OUT/encoder.safetensors" ] || $R .venv/bin/vehiclemae export --checkpoint "$ck" --out "$OUT/encoder.safetensors" >/dev/null
[ -f "$OUT/probe-val.json" ] || $R .venv/bin/vehiclemae probe --checkpoint "$OUT/encoder.safetensors" --root "$BENCH" \
  --split val --seed "$SEED" --out "$OUT/probe-val.json" >/dev/null
.venv/bin/python -c "
import json; d = json.load(open('$OUT/probe-val.json'))['results']
print('$NAME', ' '.join(f\"{k}={v['mAP']:.2f} (cross-view {v['cross_view_mAP']:.2f})\" for k, v in d.items()))"
