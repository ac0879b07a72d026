#!/usr/bin/env bash
# One GPU session, in one command: minirlhf's PPO benchmark and TRL's anchor on the same GPU,
# one after the other, an older checkout's benchmark (BASELINE) for an A/B, the same without CUDA
# graphs (--no-cuda-graphs), the compiled passes (COMPILE=0 skips them),
# the CUDA-only tests, a profile of one minirlhf iteration, the scaling grid (GRID=1), then the
# size ladder (`minirlhf ladder`), its largest size pretrained first at several settings
# (benchmarks/pretrain_sweep.py). Results land in $OUT: env.txt, bench_minirlhf.json,
# bench_trl.json, bench_baseline.json, bench_no_graphs.json, bench_minirlhf_compile.json (PPOConfig(compile=True)),
# profile.md, grid.txt, sweep.json, ladder.json, logs.txt; benchmarks/gpu_results.py gathers them.
#
#   OUT=/tmp/gpu WHEELS=.whl ANCHOR=../shared/bench/trl_ppo_anchor.py bash benchmarks/gpu_session.sh
#
# WHEELS: a folder of wheels for TRL's anchor (trl, datasets, dill, multiprocess), installed into
# /tmp/site when the machine lacks them. BUDGET: seconds for the whole script (default 560);
# each step is cut to what is left, the ladder gets what the benchmarks leave and writes what
# finished by then. BENCH=0 skips minirlhf's benchmarks, an empty ANCHOR the TRL one; RUNGS picks
# the ladder's sizes and seeds (empty: no ladder); SWEEP_SIZE and SWEEP ("--try ... --try ...")
# the sweep (an empty SWEEP skips it).
set -u
OUT=${OUT:-/tmp/gpu_session}; BUDGET=${BUDGET:-560}; RUNGS=${RUNGS-"tiny:0,1,2 small:0 large:0,1,2"}
mkdir -p "$OUT"; START=$(date +%s); ROOT=$(cd "$(dirname "$0")/.." && pwd)
left() { echo $(( BUDGET - ($(date +%s) - START) )); }
log() { echo "[$(( $(date +%s) - START )) s] $*" | tee -a "$OUT/logs.txt"; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$OUT/env.txt" 2>&1
echo "commit ${MINIRLHF_COMMIT:-?}" >> "$OUT/env.txt"
python3 -c "import sys, torch, transformers; print(sys.version.split()[0], torch.__version__, transformers.__version__)" >> "$OUT/env.txt"
# WHEELS/new: datasets 5 (needs pyarrow >= 24); WHEELS/old: datasets 4.7 (pyarrow >= 21), tried second
for set in new old; do
  [ -n "${WHEELS:-}" ] && [ -d "$WHEELS/$set" ] || continue
  python3 -c "import trl, datasets" 2>/dev/null && break
  rm -rf /tmp/site && python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
    "$WHEELS/$set"/*.whl >> "$OUT/logs.txt" 2>&1
  PYTHONPATH=/tmp/site python3 -c "import trl.experimental.ppo, datasets" >> "$OUT/logs.txt" 2>&1 && export PYTHONPATH=/tmp/site && break
done
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
cat "$OUT/env.txt" | tee -a "$OUT/logs.txt"

bench() {  # NAME LIMIT SCRIPT ARGS...: one ppo_speed.py run, its JSON line to $OUT/bench_NAME.json
  local name=$1 limit=$2; shift 2
  if [ "$(left)" -lt 60 ]; then log "skipped $name: $(left) s left"; return; fi
  log "benchmark $name"
  timeout $(( limit < $(left) ? limit : $(left) )) python3 "$@" > "$OUT/bench_$name.json" 2>> "$OUT/logs.txt"
  cat "$OUT/bench_$name.json"
}
if [ "${BENCH:-1}" = 1 ]; then bench minirlhf 150 "$ROOT/benchmarks/ppo_speed.py"; fi
if [ -n "${ANCHOR:-}" ]; then
  log "TRL anchor"
  (cd /tmp && timeout 180 python3 "$ANCHOR" > "$OUT/bench_trl.json" 2>> "$OUT/logs.txt")
  tail -c 2000 "$OUT/bench_trl.json"
fi
# BASELINE: an older checkout's copy (its minirlhf/ and benchmarks/), measured the same way for an A/B
if [ -n "${BASELINE:-}" ]; then PYTHONPATH="$BASELINE:$PYTHONPATH" bench baseline 150 "$BASELINE/benchmarks/ppo_speed.py"; fi
if [ "${BENCH:-1}" = 1 ]; then
  bench no_graphs 150 "$ROOT/benchmarks/ppo_speed.py" --no-cuda-graphs
  [ "${COMPILE:-1}" = 1 ] && bench minirlhf_compile 240 "$ROOT/benchmarks/ppo_speed.py" --compile
  log "CUDA-only tests"
  timeout 150 python3 -m pytest -q -p no:cacheprovider "$ROOT/tests/test_ppo_speed.py" -k cuda >> "$OUT/logs.txt" 2>&1; tail -n 3 "$OUT/logs.txt"
  log "one profiled minirlhf iteration"
  timeout 120 python3 "$ROOT/benchmarks/ppo_speed.py" --iterations 6 --profile "$OUT/profile.md" >> "$OUT/logs.txt" 2>&1
  head -n 9 "$OUT/profile.md"
fi
if [ "${GRID:-0}" = 1 ] && [ "$(left)" -gt 90 ]; then
  log "scaling grid"
  timeout $(( $(left) - 20 )) python3 "$ROOT/benchmarks/ppo_speed.py" --grid --iterations 6 > "$OUT/grid.txt" 2>> "$OUT/logs.txt"
  tail -n 5 "$OUT/grid.txt"
fi
if [ -n "${SWEEP:-}" ]; then
  log "pretraining sweep: ${SWEEP_SIZE:-large} $SWEEP"
  python3 "$ROOT/benchmarks/pretrain_sweep.py" --size ${SWEEP_SIZE:-large} --device ${DEVICE:-cuda} --out /tmp/sweep \
    --best /tmp/ladder/base-${SWEEP_SIZE:-large} --timeout $(( $(left) / 2 )) $SWEEP >> "$OUT/logs.txt" 2>&1
  cp /tmp/sweep/sweep.json "$OUT/" 2>/dev/null; tail -n 5 "$OUT/logs.txt"
fi

if [ -n "$RUNGS" ]; then
  log "ladder: $RUNGS"
  python3 -m minirlhf.cli ladder --rungs $RUNGS --jobs 8 --device ${DEVICE:-cuda} ${LADDER_ARGS:-} --out /tmp/ladder \
    --deadline $(( $(left) - 25 )) >> "$OUT/logs.txt" 2>&1
  cp /tmp/ladder/ladder.json "$OUT/" 2>/dev/null
  for f in /tmp/ladder/*.log; do echo "== $f"; grep -v "Loading weights" "$f" | tail -n 15; done >> "$OUT/logs.txt"
fi
log "done"
[ -s "$OUT/bench_minirlhf.json" ] && [ -s "$OUT/bench_trl.json" ] && \
  python3 "$ROOT/benchmarks/gpu_results.py" "$OUT" --out /tmp/ppo_speed_gpu.json | tee -a "$OUT/logs.txt"
