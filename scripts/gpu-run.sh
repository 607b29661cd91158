#!/bin/bash
# The project's GPU matrices on the GPU machine lent to this project's sessions (docs/engines.md, docs/gpus.md). Not
# part of CI. That machine has no package registry, so this uses the offline SGLang 0.5.15 bundle beside the project
# (../shared/gpu, staged into the git-ignored .gpu/). With SGLang installed, each mode is a plain command, e.g.
# `pytest --ablate-matrix matrix/gpu-slice.yaml benchmarks/gpu_experts.py`.
#
# Here, from the project root (needs PyPI for three pure-Python wheels):
#   bash scripts/gpu-run.sh stage
# Then a `device` run from the project root, carry [".gpu/site.tar.xz", ".gpu/run"], timeout 590, command one of:
#   MODE=one bash scripts/gpu-run.sh 540       # one GPU: bad GPU id, two servers sharing GPU 0, serial, -n 2
#   MODE=x2-rows bash scripts/gpu-run.sh 540   # two GPUs: the TP2, TP2 + DP attention and TP2 + EP2 rows
#   MODE=x2-pair bash scripts/gpu-run.sh 540   # two GPUs: the one-GPU rows serially, then -n 2 side by side
#   MODE=capacity bash scripts/gpu-run.sh 540  # gpu-capacity.yaml: capacity at the SLO, batch levels, agreement
#   MODE=slice bash scripts/gpu-run.sh 540     # gpu-slice.yaml (needs an H200's memory) and the experts per step
# KEXPR=EXPR selects cases of the capacity and slice runs (pytest -k EXPR).
# A run cut by the time box goes on in the next call: put its results.jsonl (from NAME.tar.xz) at
# .gpu/run/prev/NAME.jsonl here, and the run resumes from it (--ablate-resume, per launch); the slice run then
# leaves out gpu_experts.py on the launches already measured, whose servers it would otherwise start again.
# Artefacts in $OUT: console.txt, apps.txt (NVML's compute apps and our pids, every second), one .tar.xz per
# pytest run (its results.jsonl, report.md and logs) and the experts-<row>.json files.
set -u
if [ "${1:-}" = stage ]; then
  set -e
  bash ../shared/gpu/stage.sh matrix/gpu-pair.yaml
  cp matrix/gpu-*.yaml benchmarks/gpu_experts.py .gpu/run/
  python3 -m pip download -q --no-deps -d .gpu/run/wheels pytest-xdist==3.8.0 execnet==2.1.2 nvidia-ml-py
  ls .gpu/run
  exit
fi
T0=$(date +%s); LIMIT=${1:-540}; MODE=${MODE:-one}
case $MODE in one|x2-rows|x2-pair|capacity|slice) ;; *) echo "MODE=$MODE: expected one, x2-rows, x2-pair, capacity or slice"; exit 2 ;; esac
ROOT=$PWD; R=$PWD/.gpu/run; OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
exec > >(tee -a "$OUT/console.txt") 2>&1
export PYTHONUNBUFFERED=1
nvidia-smi -L; nvidia-smi --query-gpu=index,memory.used,memory.total --format=csv,noheader
echo "pid namespace $(readlink /proc/self/ns/pid); pid 1 is $(cat /proc/1/comm)"
[ -d /tmp/s/lib ] || { mkdir -p /tmp/s && python3 -c "import tarfile; tarfile.open('.gpu/site.tar.xz').extractall('/tmp/s', filter='tar')"; }   # kept on a warm machine
mkdir -p /tmp/w && for w in "$R"/wheels/*.whl; do python3 -m zipfile -e "$w" /tmp/w; done
export PYTHONPATH=$R/boot:/tmp/s/lib:/tmp/w:$ROOT
export ABL_STUBS=IPython,cutlass,datasets,flashinfer.sampling,flashinfer.prefill,deep_gemm
export SGLANG_ENABLE_JIT_DEEPGEMM=0 SGLANG_IS_FLASHINFER_AVAILABLE=false HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
cd "$R"
python3 -c "import pynvml, xdist; pynvml.nvmlInit(); print('NVML GPUs', pynvml.nvmlDeviceGetCount(), 'xdist', xdist.__version__)"
( while :; do
    echo "$(date +%s) apps=[$(nvidia-smi --query-compute-apps=gpu_uuid,pid,used_memory --format=csv,noheader | tr '\n' ';')] used=[$(nvidia-smi --query-gpu=index,memory.used --format=csv,noheader | tr '\n' ';')] ours=[$(pgrep -f 'sglang.launch_server|sglang::' | tr '\n' ' ')]"
    sleep 1
  done ) > "$OUT/apps.txt" 2>&1 &
SAMPLER=$!
trap 'kill $SAMPLER 2>/dev/null' EXIT
take_prev() {  # a run's records from the last call (.gpu/run/prev/NAME.jsonl), where they are more than here
  local prev="$R/prev/$1.jsonl" now="/tmp/ablate-$1/results.jsonl"
  if [ -s "$prev" ] && [ "$(wc -l < "$prev")" -gt "$(cat "$now" 2>/dev/null | wc -l)" ]; then
    mkdir -p "/tmp/ablate-$1" && cp "$prev" "$now"
  fi
}
experts_done() {  # --deselect for gpu_experts.py on each launch already measured: resumed, its server would start
  # again just for it (--ablate-resume knows the matrix's cases only); dummy_routing has no recorder, so always
  take_prev slice
  echo "--deselect=gpu_experts.py::test_experts_per_decode_step[dummy_routing]"
  [ -s /tmp/ablate-slice/results.jsonl ] && python3 - /tmp/ablate-slice/results.jsonl <<'EOF2'
import json, sys
for row, launch, launches in sorted({(r["row"], r.get("launch") or 1, r.get("launches") or 1) for r in map(json.loads, open(sys.argv[1]))}):
    print(f"--deselect=gpu_experts.py::test_experts_per_decode_step[{row}{f'-launch{launch}' if launches > 1 else ''}]")
EOF2
}
one() {  # a run's name, then its pytest options; BOX=S caps its time
  local name=$1; shift
  local left=$(( LIMIT - ($(date +%s) - T0) - 20 ))
  [ -n "${BOX:-}" ] && [ "$BOX" -lt $left ] && left=$BOX
  [ $left -lt 30 ] && { echo "== $name skipped: ${left}s left"; return; }
  echo "== $name: pytest $* (time box ${left}s) at t=$(( $(date +%s) - T0 ))s"
  local resume=() now="/tmp/ablate-$name/results.jsonl"
  take_prev "$name"
  [ -s "$now" ] && { resume=(--ablate-resume); echo "== $name resumes from $(wc -l < "$now") records"; }
  local t; t=$(date +%s.%N)
  PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 timeout -s INT -k 25 $left python3 -m pytest -p pytest_benchmark.plugin \
    -p xdist.plugin -p pytest_sglang_ablate.plugin --ablate-matrix "${MAT:-gpu-pair.yaml}" \
    --ablate-out "/tmp/ablate-$name" "${resume[@]}" -rA --tb=short -p no:cacheprovider "$@" 2>&1 | grep -v "^  \["
  echo "== $name wall $(python3 -c "import time; print(round(time.time() - $t, 1))") s, rc ${PIPESTATUS[0]}"
  echo "leftover: [$(pgrep -af 'sglang' | head -3)] apps: [$(nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader | tr '\n' ';')]"
  [ -f "/tmp/ablate-$name/results.jsonl" ] && python3 - "/tmp/ablate-$name/results.jsonl" <<'EOF'
import json, sys
seen = set()
for line in open(sys.argv[1]):
    r = json.loads(line)
    config = (r.get("figures") or {}).get("effective_config") or {}
    if r["row"] not in seen and config:
        seen.add(r["row"])
        keys = ("tp_size", "dp_size", "enable_dp_attention", "ep_size", "moe_a2a_backend", "max_running_requests")
        print("effective config", r["row"], {k: config.get(k) for k in keys})
EOF
  [ -d "/tmp/ablate-$name" ] && tar -C /tmp -cJf "$OUT/$name.tar.xz" "ablate-$name"
}
case $MODE in
  one)
    one badgpu --ablate-gpus 0,1
    # both one-GPU rows' servers on GPU 0 at once, each given 30 % of its memory; this also warms the caches
    sed 's/^  attention-backend: triton$/  attention-backend: triton\n  mem-fraction-static: 0.3/' gpu-pair.yaml > gpu-shared.yaml
    MAT=gpu-shared.yaml one shared -n 2 --dist loadgroup --ablate-gpus none -k "not tp2"
    one serial
    one packed -n 2 --dist loadgroup ;;
  x2-rows)
    one rows --ablate-gpus 0,1 -k tp2 ;;
  x2-pair)
    BOX=150 one warm --ablate-gpus 0 -k "cuda_graph-single"   # caches warm before the timed pair
    one serial --ablate-gpus 0,1 -k "not tp2"
    one packed -n 2 --dist loadgroup --ablate-gpus 0,1 -k "not tp2" ;;
  capacity)
    MAT=gpu-capacity.yaml one capacity -v ${KEXPR:+-k "$KEXPR"} ;;
  slice)   # the matrix named as a path too, or pytest would collect only gpu_experts.py
    mapfile -t skip < <(experts_done)
    MAT=gpu-slice.yaml one slice -v gpu-slice.yaml gpu_experts.py "${skip[@]}" ${KEXPR:+-k "$KEXPR"} ;;
esac
echo "done t=$(( $(date +%s) - T0 ))s"; ls -la "$OUT"
