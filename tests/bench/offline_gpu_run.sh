#!/usr/bin/env bash
# Runs tests/bench/bench_vllm_gpu.py on a GPU machine without a package index (torch 2.11 /
# CUDA 13 there), from vLLM 0.26.0 and the packages it needs packed as an xz tar split in parts
# (see docs/benchmarks.md, "Qwen3-ASR on vLLM on a GPU"). From the repository root:
#
#   tests/bench/offline_gpu_run.sh stage DIR             copy DIR/part* (and DIR/spare.tar.xz)
#                                                        to $STAGE (several calls may add parts)
#   tests/bench/offline_gpu_run.sh run 'NAME|LIMIT|ARGS' ...
#       unpack the staged parts once, check that vLLM's engine and Qwen3-ASR modules import
#       (a module the machine lacks is taken from spare.tar.xz, pure-Python packages, only
#       when an import misses it), then run each job: bench_vllm_gpu.py ARGS
#       --time-limit LIMIT --out $OUT/NAME.json, its log in $OUT/NAME.log
set -u
STAGE=${STAGE:-/tmp/vparts}; SITE=${SITE:-/tmp/vsite}; OVER=${OVER:-/tmp/vover}
SPARE=${SPARE:-/tmp/vspare}; OUT=${OUT:-/tmp/bench-out}
mode=${1:?stage or run}; shift
if [ "$mode" = stage ]; then
  mkdir -p "$STAGE"
  cp "${1:?DIR}"/part* "$STAGE"/ 2>/dev/null
  [ -f "$1/spare.tar.xz" ] && cp "$1/spare.tar.xz" "$STAGE"/
  ls -l "$STAGE"
  exit 0
fi
[ "$mode" = run ] || { echo "usage: $0 stage DIR | run 'NAME|LIMIT|ARGS' ..." >&2; exit 2; }
mkdir -p "$OUT"
t0=$(date +%s)
if [ ! -f "$SITE/.done" ]; then
  rm -rf "$SITE"; mkdir -p "$SITE"
  cat "$STAGE"/part* | xz -d -T0 | tar -x -C "$SITE" && touch "$SITE/.done"
  echo "unpacked in $(( $(date +%s) - t0 )) s"
fi
mkdir -p "$OVER" "$SPARE"
[ -f "$STAGE/spare.tar.xz" ] && tar -xJf "$STAGE/spare.tar.xz" -C "$SPARE"
# openai 3.63 (vLLM imports it at start) needs httpx2, which needs newer anyio and idna
for n in httpx2 httpcore2 truststore anyio idna typing_extensions.py; do
  [ -e "$SPARE/$n" ] && cp -r "$SPARE/$n" "$OVER"/
done
export PYTHONPATH=$OVER:$SITE HF_HUB_OFFLINE=1 VLLM_NO_USAGE_STATS=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
for _ in $(seq 1 12); do
  python - > "$OUT/imports.txt" 2>&1 <<'PY'
import sys, time
t = time.time()
import numpy, torch, transformers
print("python", sys.version.split()[0], "torch", torch.__version__, "cuda",
      torch.cuda.is_available(), "transformers", transformers.__version__)
import vllm, vllm.config, vllm.engine.arg_utils, vllm.v1.engine.async_llm, vllm.v1.engine.core
import vllm.renderers.inputs.preprocess, vllm.v1.worker.gpu_model_runner
import vllm.model_executor.models.qwen3_asr, vllm.model_executor.models.qwen3_asr_realtime
print("vllm", vllm.__version__, "imports ok in %.1f s" % (time.time() - t))
PY
  if grep -q "imports ok" "$OUT/imports.txt"; then cat "$OUT/imports.txt"; break; fi
  miss=$(grep -o "No module named '[^']*'" "$OUT/imports.txt" | tail -1 \
         | sed "s/No module named '\([^'.]*\).*/\1/")
  echo "missing: ${miss:-?}"
  if [ -n "$miss" ] && [ -e "$SPARE/$miss" ] && [ ! -e "$OVER/$miss" ]; then
    cp -r "$SPARE/$miss" "$OVER"/
  elif [ -n "$miss" ] && [ -e "$SPARE/$miss.py" ] && [ ! -e "$OVER/$miss.py" ]; then
    cp "$SPARE/$miss.py" "$OVER"/
  else
    tail -5 "$OUT/imports.txt"; python -m pip list > "$OUT/pip-list.txt" 2>&1; exit 3
  fi
done
for job in "$@"; do
  name=${job%%|*}; rest=${job#*|}; limit=${rest%%|*}; args=${rest#*|}
  echo "=== $name (limit $limit s): $args"
  s=$(date +%s)
  # shellcheck disable=SC2086  # ARGS is a list of options
  timeout -k 10 $(( ${limit%.*} + 60 )) python tests/bench/bench_vllm_gpu.py $args \
      --time-limit "$limit" --out "$OUT/$name.json" > "$OUT/$name.log" 2>&1
  echo "rc=$? in $(( $(date +%s) - s )) s"
  grep -v "^\(INFO\|DEBUG\)\|it/s\]\|^(EngineCore\|^|" "$OUT/$name.log" | tail -25
done
echo "total $(( $(date +%s) - t0 )) s"
