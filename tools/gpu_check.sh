#!/usr/bin/env bash
# The whole GPU check as one command (issue #15): throughput ratios of the annotator against a bare ResNet-50
# (bf16, channels_last off/on, torch.compile off/on, batch 192), EGL rendering, and bench-annot at GPU scale
# (NeuralAnnot, NeuralAnnot + fit, SMPLify). Every part runs under its own `timeout` and prints one
# "=== [part] ok|FAILED|TIMED OUT" line; a failing part never stops the others. Results: $OUT/gpu_check.json,
# $OUT/gpu_check.md, $OUT/gpu_check.log (+ bench_annot.md/.png): at most 8 files.
#
#   bash tools/gpu_check.sh            # on the GPU machine (no network): carry .whl .gpucheck .gl (make wheelhouse-gpu)
#   bash tools/gpu_check.sh --dry-run  # the same parts at tiny sizes on CPU, OSMesa instead of EGL (the slow test)
#
# GPU mode installs the wheelhouse .whl/ into a target folder (pip --no-index) and puts it on PYTHONPATH.
# Dry-run mode uses the current environment's packages; if .whl/ exists it still installs the wheels into a
# temporary target for CPython 3.12 (the install step is exercised, the wheels are not imported). Data come
# from .gpucheck/ when present (unpacked exactly as on the GPU machine), else from ../shared/data and the
# baked body model. Environment: OUT (default outputs/gpu-check), GPU_CHECK_PYTHON (default python3),
# GPU_CHECK_METHODS (bench-annot methods; unknown ones are skipped with a line), GPU_CHECK_BUDGET_SCALE
# (integer factor on every time budget, default 1, e.g. 3 for a dry run on a heavily shared CPU).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
REPO=$PWD
MODE=gpu
case "${1:-}" in
  --dry-run) MODE=dry ;;
  "") ;;
  *) echo "usage: bash tools/gpu_check.sh [--dry-run]"; exit 2 ;;
esac
PY=${GPU_CHECK_PYTHON:-python3}
OUT=${OUT:-$REPO/outputs/gpu-check}
METHODS=${GPU_CHECK_METHODS:-"neuralannot neuralannot_fit smplify"}
mkdir -p "$OUT"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 TQDM_MININTERVAL=10

if [[ $MODE == gpu ]]; then
  TOTAL_S=470                   # the parts' budgets below add up to this: under 8 minutes with the summary
  PLATFORM=egl
  # throughput: the paper's batch, bf16; eager with both layouts (2 interleaved repeats), compiled with NHWC
  THR="--device cuda --batch 192 --precision bf16 --steps 15 --warmup 3"
  THR_EAGER="--channels-last false true --repeats 2"
  THR_COMPILE="--channels-last true --repeats 1 --compile --backend inductor"
  RENDER_FRAMES=200
  # bench-annot at GPU scale: 2000 ITW people, ResNet-50, batch 192, 200 steps (LR step at 80 %), CMU stage (a)
  # and the prior shortened; SMPLify runs on the CPU, as in the bench
  BENCH_SIZE="--size 2000 --mocap-size 500 --image-hw 240 320 --steps 200 --aux-steps 100 --aux-batch 192
    --prior-epochs 10 --smplify-iters 20 --refine-iters 0 --seeds 0 --no-pretrained-backbone"
  BENCH_SET="model.backbone_depth=50 data.batch_size=192 data.num_workers=12 trainer.accelerator=gpu
    trainer.precision=bf16-mixed trainer.channels_last=true"
  # per-part budgets (s): estimates made without a GPU; a TIMED OUT line on the first run says which to move
  B_ENV=30 B_VER=15 B_RENDER=15 B_TRAIN=45 B_ANNOT=30 B_SYNTH=80 B_NA=90 B_ALL=60 B_TRAIN_C=75 B_ANNOT_C=30
else
  TOTAL_S=270                   # the slow test allows 5 minutes; a part's budget is cut to what is left
  PLATFORM=osmesa
  # fp32: bf16 on a CPU without bf16 units is emulated (slower than the whole dry run allows)
  THR="--device cpu --batch 2 --depth 18 --input-hw 64 48 --precision 32 --steps 1 --warmup 1 --threads 2"
  THR_EAGER="--channels-last false true --repeats 1"
  THR_COMPILE="--channels-last true --repeats 1 --compile --backend eager"
  RENDER_FRAMES=3
  BENCH_SIZE="--size 3 --mocap-size 3 --image-hw 120 160 --steps 3 --aux-steps 3 --aux-batch 4
    --prior-epochs 1 --smplify-iters 3 --refine-iters 0 --cmu-frames 6 --cmu-fit-iters 50 --seeds 0
    --no-pretrained-backbone"
  BENCH_SET="model.backbone_depth=18 data.input_hw=[128,96] data.batch_size=4 data.num_workers=0
    trainer.accelerator=cpu trainer.precision=32-true trainer.channels_last=true"
  CMU_CLIPS=6                   # the smallest clips only (every third feeds the ITW split)
  B_ENV=60 B_VER=40 B_RENDER=40 B_TRAIN=60 B_ANNOT=45 B_SYNTH=90 B_NA=120 B_ALL=60 B_TRAIN_C=60 B_ANNOT_C=45
fi
SCALE=${GPU_CHECK_BUDGET_SCALE:-1}  # integer: multiplies every budget (a loaded or slow machine); default 1
for v in TOTAL_S B_ENV B_VER B_RENDER B_TRAIN B_ANNOT B_SYNTH B_NA B_ALL B_TRAIN_C B_ANNOT_C; do
  printf -v "$v" '%d' $((${!v} * SCALE))
done
export PYOPENGL_PLATFORM=$PLATFORM
START=$(date +%s)
DEADLINE=$((START + TOTAL_S))

now() { date +%s.%N; }
secs_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
record() { printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" >>"$WORK/status.tsv"; }

SMI_PID=
smi_start() {  # sample the GPU's used memory twice a second while a part runs
  if [[ $MODE == gpu ]] && command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 500 >"$WORK/$1.smi" 2>/dev/null &
    SMI_PID=$!
  fi
}
smi_stop() { if [[ -n $SMI_PID ]]; then kill "$SMI_PID" 2>/dev/null; wait "$SMI_PID" 2>/dev/null; SMI_PID=; fi; }

part() {  # part NAME BUDGET_S CMD...: CMD under its own time limit (cut to what is left); one status line
  local name=$1 budget=$2 left rc status word t0 wall
  shift 2
  left=$((DEADLINE - $(date +%s)))
  ((budget > left)) && budget=$((left > 0 ? left : 0))
  echo
  echo "=== [$name] start, budget ${budget} s"
  if ((budget < 5)); then
    echo "=== [$name] SKIPPED: the check's ${TOTAL_S} s are spent"
    record "$name" skipped 0 0 "$budget"
    return 0
  fi
  smi_start "$name"
  t0=$(now)
  timeout -k 10 "$budget" "$@"
  rc=$?
  wall=$(secs_since "$t0")
  smi_stop
  case $rc in
    0) status=ok word=ok ;;
    124 | 137) status=timeout word="TIMED OUT" ;;
    *) status=failed word=FAILED ;;
  esac
  echo "=== [$name] $word (exit $rc) in ${wall} s of ${budget} s"
  record "$name" "$status" "$rc" "$wall" "$budget"
}

# --------------------------------------------------------------------------- environment (in this shell)
section_env() {
  local t0 rc=0
  t0=$(now)
  echo "=== [env] start, mode $MODE, repo $REPO, work $WORK, OUT $OUT"
  export PYTHONPATH=$REPO
  if compgen -G ".whl/*.whl" >/dev/null; then
    local n
    n=$(ls .whl/*.whl | wc -l)
    if [[ $MODE == gpu ]]; then
      if timeout "$B_ENV" "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
          --target "$WORK/site" .whl/*.whl; then
        export PYTHONPATH=$WORK/site:$REPO
        echo "wheelhouse: $n wheels installed into $WORK/site (on PYTHONPATH)"
      else
        rc=1; echo "error: wheelhouse install failed: imports of smplx, pyrender ... will fail"
      fi
    else
      if timeout "$B_ENV" "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
          --only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux2014_x86_64 \
          --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux1_x86_64 \
          --platform manylinux_2_5_x86_64 --target "$WORK/site" .whl/*.whl; then
        echo "wheelhouse: $n wheels install for CPython 3.12 into $WORK/site (dry run: not imported; this environment's packages are used)"
      else
        rc=1; echo "error: wheelhouse install (for CPython 3.12) failed"
      fi
    fi
  elif [[ $MODE == gpu ]]; then
    rc=1; echo "error: no .whl/*.whl: run 'make wheelhouse-gpu' and carry .whl"
  else
    echo "wheelhouse: no .whl/ (dry run uses this environment's packages)"
  fi
  if [[ $MODE == gpu ]]; then  # EGL: the glvnd loaders (PyOpenGL's egl platform opens libEGL and libOpenGL)
    local libs
    libs=$(ldconfig -p 2>/dev/null)
    if ! grep -q 'libEGL.so.1' <<<"$libs" || ! grep -q 'libOpenGL.so.0' <<<"$libs" || ! grep -q 'libGL.so.1' <<<"$libs"; then
      if compgen -G ".gl/*.deb" >/dev/null; then
        for f in .gl/*.deb; do dpkg -x "$f" /; done
        ldconfig
        echo "GL: unpacked $(ls .gl/*.deb | wc -l) loader packages from .gl/"
      else
        echo "warning: GL loaders missing and no .gl/*.deb: EGL rendering will fail"
      fi
    fi
    local vendor=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
    [[ -f $vendor ]] && export __EGL_VENDOR_LIBRARY_FILENAMES=$vendor
    echo "GL: $(ldconfig -p 2>/dev/null | grep -c 'libEGL') libEGL entries; vendor ${__EGL_VENDOR_LIBRARY_FILENAMES:-default}"
    nvidia-smi || { rc=1; echo "error: nvidia-smi failed"; }
  fi
  # data: the body model, the CMU clips, the photos (.gpucheck/ from make wheelhouse-gpu, else the set-up files)
  local model=FREE_ANNY_SMPL_NEUTRAL.pkl
  if [[ -f .gpucheck/$model.xz ]]; then
    mkdir -p "$WORK/body_models/free"
    "$PY" -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], 'wb'))" \
      ".gpucheck/$model.xz" "$WORK/body_models/free/$model" \
      && (cd "$WORK/body_models/free" && sha256sum -c --quiet "$REPO/.gpucheck/$model.sha256") \
      && echo "body model: .gpucheck/$model.xz unpacked, sha256 matches" \
      || { rc=1; echo "error: body model unpack or sha256 check failed"; }
    BODY_MODELS=$WORK/body_models
  else
    BODY_MODELS=$REPO/body_models
    echo "body model: no .gpucheck/$model.xz; using $BODY_MODELS"
  fi
  export BODY_MODELS_DIR=$BODY_MODELS
  BODY_MODEL=$BODY_MODELS/free/$model
  [[ -f $BODY_MODEL ]] || { rc=1; echo "error: $BODY_MODEL missing (make setup, or make wheelhouse-gpu and carry .gpucheck)"; }
  if [[ -f .gpucheck/mocap_cmu.tar.xz ]]; then
    mkdir -p "$WORK/data"
    "$PY" -c "import tarfile, sys; tarfile.open(sys.argv[1]).extractall(sys.argv[2], filter='data')" \
      .gpucheck/mocap_cmu.tar.xz "$WORK/data" || { rc=1; echo "error: CMU unpack failed"; }
    CMU=$WORK/data/mocap_cmu
  else
    CMU=../shared/data/mocap_cmu
  fi
  PHOTOS=none
  for d in .gpucheck/photos ../shared/data/photos; do [[ -d $d ]] && { PHOTOS=$d; break; }; done
  if [[ $MODE == dry && -d $CMU ]]; then  # a few clips: parsing all 64 MB is most of a tiny run
    mkdir -p "$WORK/data/cmu_dry"
    for f in $(ls -S "$CMU"/*.bvh | tail -n "$CMU_CLIPS"); do ln -s "$(cd "$(dirname "$f")" && pwd)/$(basename "$f")" "$WORK/data/cmu_dry/"; done
    CMU=$WORK/data/cmu_dry
  fi
  echo "data: CMU $CMU ($(ls "$CMU"/*.bvh 2>/dev/null | wc -l) clips), photos $PHOTOS"
  [[ -d $CMU ]] || { rc=1; echo "error: no CMU clips (make wheelhouse-gpu and carry .gpucheck)"; }
  local commit
  commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
  "$PY" - "$WORK/machine.json" "$MODE" "$commit" <<'EOF' || rc=1
import json, os, subprocess, sys, time
info = {"mode": sys.argv[2], "commit": sys.argv[3], "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cpus": os.cpu_count(), "loadavg": [round(x, 1) for x in os.getloadavg()], "gpu": None}
try:
    info["gpu"] = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=20).stdout.strip() or None
except (OSError, subprocess.SubprocessError):
    pass
open(sys.argv[1], "w").write(json.dumps(info))
EOF
  local wall status=ok
  wall=$(secs_since "$t0")
  ((rc)) && status=failed
  echo "=== [env] $([[ $status == ok ]] && echo ok || echo FAILED) in ${wall} s"
  record env "$status" "$rc" "$wall" "$B_ENV"
}

bench_part() {  # bench_part NAME BUDGET METHODS...: bench-annot, its results kept as NAME.json (+ .md/.png)
  local name=$1 budget=$2
  shift 2
  rm -f "$WORK/bench/results.json"
  # shellcheck disable=SC2086
  part "$name" "$budget" "$PY" tools/gpu_check.py run --stats "$WORK/$name.stats.json" tools/bench_annot.py \
    --out "$WORK/bench" $BENCH_SIZE --cmu-root "$CMU" --photos-dir "$PHOTOS" --methods "$@" --set $BENCH_SET
  if [[ -f $WORK/bench/results.json ]]; then
    cp "$WORK/bench/results.json" "$WORK/$name.json"
    cp "$WORK/bench/results.md" "$OUT/bench_annot.md" 2>/dev/null
    cp "$WORK/bench/results.png" "$OUT/bench_annot.png" 2>/dev/null
  fi
}

main() {
  echo "gpu-check: mode $MODE, $(date -u '+%Y-%m-%d %H:%M:%S UTC'), parts within ${TOTAL_S} s"
  section_env
  # shellcheck disable=SC2086
  {
    part versions "$B_VER" "$PY" tools/gpu_check.py run --stats "$WORK/versions.stats.json" tools/gpu_check.py versions
    part render "$B_RENDER" "$PY" tools/gpu_check.py run --stats "$WORK/render.stats.json" tools/gpu_check.py render \
      --frames "$RENDER_FRAMES" --json "$WORK/render.json" --body-model "$BODY_MODEL"
    part train_eager "$B_TRAIN" "$PY" tools/gpu_check.py run --stats "$WORK/train_eager.stats.json" \
      tools/bench_train.py $THR $THR_EAGER --body-model "$BODY_MODEL" --json "$WORK/train_eager.json"
    part annotate_eager "$B_ANNOT" "$PY" tools/gpu_check.py run --stats "$WORK/annotate_eager.stats.json" \
      tools/bench_annotate.py $THR $THR_EAGER --body-model "$BODY_MODEL" --json "$WORK/annotate_eager.json"
    part synthetic "$B_SYNTH" "$PY" tools/gpu_check.py run --stats "$WORK/synthetic.stats.json" \
      tools/gpu_check.py synth --json "$WORK/synthetic.json" --out "$WORK/bench" $BENCH_SIZE --cmu-root "$CMU" \
      --photos-dir "$PHOTOS"
    local known
    known=$("$PY" tools/gpu_check.py methods $METHODS)
    echo "bench-annot methods: asked '$METHODS', running '${known:-none}'"
    if [[ " $known " == *" neuralannot "* ]]; then  # NeuralAnnot alone first: its row survives a later timeout
      bench_part bench_neuralannot "$B_NA" neuralannot
    fi
    if [[ -n $known ]]; then  # every method (NeuralAnnot's completed stages are reused)
      bench_part bench_all "$B_ALL" $known
    else
      echo "=== [bench_all] SKIPPED: no known bench-annot method in '$METHODS'"
      record bench_all skipped 0 0 "$B_ALL"
    fi
    part train_compile "$B_TRAIN_C" "$PY" tools/gpu_check.py run --stats "$WORK/train_compile.stats.json" \
      tools/bench_train.py $THR $THR_COMPILE --body-model "$BODY_MODEL" --json "$WORK/train_compile.json"
    part annotate_compile "$B_ANNOT_C" "$PY" tools/gpu_check.py run --stats "$WORK/annotate_compile.stats.json" \
      tools/bench_annotate.py $THR $THR_COMPILE --body-model "$BODY_MODEL" --json "$WORK/annotate_compile.json"
  }
  echo
  echo "=== [summary] $(secs_since "$START.0") s in all"
  timeout 60 "$PY" tools/gpu_check.py collect --work "$WORK" --out "$OUT" || echo "=== [summary] FAILED to collect"
  local bad
  bad=$(awk -F'\t' '$2 != "ok"' "$WORK/status.tsv" | wc -l)
  echo "=== gpu-check done: $(wc -l <"$WORK/status.tsv") parts, $bad not ok; results in $OUT (gpu_check.json, gpu_check.md)"
  rm -rf "$WORK"
  [[ $bad == 0 ]]
}

main 2>&1 | tee "$OUT/gpu_check.log"
exit "${PIPESTATUS[0]}"
