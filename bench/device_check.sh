#!/usr/bin/env bash
# Accelerator check of hqjax, meant to finish in under 10 minutes on one GPU (or TPU host):
#   1. the device jax sees (refuses to run on a CPU unless ALLOW_CPU=1);
#   2. bench/suite.py on ResNet-18 and ResNet-50 at batch 256 in bfloat16: step time of every method,
#      its ratio to the fp32-parameter baseline step, compile time, compiled and device memory, exact
#      exported size; written as JSON for the results page;
#   3. the tables printed.
#
#   bash bench/device_check.sh                     # on the GPU machine, from the repository root
#   python bench/reproduce.py report               # afterwards, on any machine: adds the tables to the page
#
# Settings (environment): PYTHON (default python), MODELS (resnet18,resnet50), BATCH (256),
# DTYPE (bfloat16), METHODS (fp,twn,ptq,hq,hla_tq,alq), REPS (10), OUT (docs/results/bench),
# NAME (the JSON's file name, default from the device kind), ALLOW_CPU=1 to try the script on a CPU
# (e.g. MODELS=lenet5 BATCH=16 DTYPE=float32 ALLOW_CPU=1 OUT=/tmp bash bench/device_check.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python}
MODELS=${MODELS:-resnet18,resnet50}
BATCH=${BATCH:-256}
DTYPE=${DTYPE:-bfloat16}
METHODS=${METHODS:-fp,twn,ptq,hq,hla_tq,alq}
REPS=${REPS:-10}
OUT=${OUT:-docs/results/bench}

kind=$("$PYTHON" - 2>/dev/null <<'EOF'
import re
import jax

d = jax.devices()[0]
print(d.platform, jax.device_count(), re.sub(r"[^A-Za-z0-9]+", "_", d.device_kind).strip("_").lower())
EOF
) || { echo "device_check: '$PYTHON' cannot import jax; set PYTHON to the environment's python" >&2; exit 2; }
read -r platform count device <<<"$kind"
echo "device_check: $count x $device ($platform)"
if [[ "$platform" == "cpu" && "${ALLOW_CPU:-0}" != "1" ]]; then
    echo "device_check: jax sees no accelerator (platform cpu); install jax for the GPU/TPU, or set" \
         "ALLOW_CPU=1 to try the script on a CPU" >&2
    exit 2
fi
NAME=${NAME:-${device}_${DTYPE}_b${BATCH}}
mkdir -p "$OUT"
json="$OUT/$NAME.json"

start=$(date +%s)
"$PYTHON" bench/suite.py --models "$MODELS" --methods "$METHODS" --batch "$BATCH" --dtype "$DTYPE" \
    --reps "$REPS" --warmup 3 --json "$json"
echo "device_check: wrote $json in $(( $(date +%s) - start )) s"
