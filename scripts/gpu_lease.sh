#!/bin/bash
# One call on a lent GPU (see README, "Training on a lent GPU"): StarGAN v2 training throughput per batch size,
# the CUDA tests, the CUDA speed bench, then StarGAN v2 training for what is left of BUDGET seconds at the batch
# that gives the most images per second without losing more than 20 % of the iterations per second.
# Here first:  scripts/gpu_session.py pack --jobs stargan2_faces, then a dry run in a clone:
#   DEV=cpu BATCHES=2,4 BUDGET=80 PY=.venv/bin/python OUT=/tmp/dry bash scripts/gpu_lease.sh
# There:       run(command="DDOMAIN=1 BUDGET=525 bash scripts/gpu_lease.sh", carry=[".gpu/pack.tar.gz"])
# The pack carries 45,000 training faces as latents (D memorised the 2,700 PNGs it carried before), rendered there
# by the DCGAN it carries too. DAUG=color,translation,cutout adds --d-augment (on a CPU run it kept D at chance for
# 1,316 iterations: docs/quality/faces.md; try the bank without it first). DDOMAIN=1 adds --lambda-d-domain 1
# (D's heads also call the other domain's photos fake; 2,680 CPU iterations with it lifted gender agreement
# from chance to 0.84-0.90 and were adopted): use it on the next lease.
# (the first GPU steps are slow, ~16 s for the first 10 on an H200: the throughput bench warms up 12)
set -u
export PYTHONUNBUFFERED=1
DEV=${DEV:-cuda}; BATCHES=${BATCHES:-64,256}; BUDGET=${BUDGET:-530}; PY=${PY:-python3}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
tar xzf .gpu/pack.tar.gz
nvidia-smi > "$OUT/nvidia_smi.txt" 2>&1; lscpu > "$OUT/lscpu.txt" 2>&1
timeout 120 $PY bench/bench_stargan2_train.py --device $DEV --batches $BATCHES --rounds 8 \
  --data data/faces_bank20 --init .gpu/init/stargan2_faces.safetensors > "$OUT/train_bench.log" 2>&1
tail -5 "$OUT/train_bench.log"; cp bench/results/stargan2_train_$DEV.json "$OUT/" 2>/dev/null
B=$($PY - "$DEV" <<'PYEOF'
import json, sys
rows = json.load(open(f"bench/results/stargan2_train_{sys.argv[1]}.json"))["rows"]
base = rows[0]["iterations_per_s"]
# the most images per second among batches that keep at least 80 % of the smallest batch's iterations per second
print(max((r for r in rows if r["iterations_per_s"] >= 0.8 * base), key=lambda r: r["images_per_s"])["batch"])
PYEOF
)
B=${B:-64}; echo "chosen batch $B at ${SECONDS}s"
if [ "$DEV" = cuda ]; then
  timeout 70 $PY -m pytest -q -p no:cacheprovider --noconftest tests/test_cuda.py > "$OUT/cuda_tests.log" 2>&1
  tail -4 "$OUT/cuda_tests.log"
  timeout 140 $PY bench/bench_speed.py --device cuda > "$OUT/bench.log" 2>&1
  tail -45 "$OUT/bench.log"; cp bench/results/speed_cuda.json "$OUT/" 2>/dev/null
fi
MIN=$($PY -c "print(max(0.3, round(($BUDGET - $SECONDS) / 60 - 0.6, 2)))")
echo "training $MIN minutes from ${SECONDS}s"
$PY scripts/gpu_session.py train --device $DEV --minutes $MIN --jobs stargan2_faces --batch $B --ds-iter 3000 \
  ${DAUG:+--d-augment $DAUG} ${DDOMAIN:+--d-domain $DDOMAIN}
echo "done at ${SECONDS}s"
