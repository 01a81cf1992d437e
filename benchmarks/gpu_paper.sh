#!/usr/bin/env bash
# The paper-scale GPU runs (sweep `gpu-paper`, store results/gpu), resumable across calls.
#
#   here:   bash benchmarks/gpu_paper.sh stage            # data the sweep reads -> .carry/data
#   device: run(command="bash benchmarks/gpu_paper.sh run 500",
#               carry=[".carry", "results/gpu/partial"], timeout_s=590)
#   here:   bash benchmarks/gpu_paper.sh unpack DIR       # DIR = the call's files_at
#
# `run` prints the GPU, runs the CUDA tests, then the sweep until SECONDS (default 500) have
# passed since it started, and packs the store (finished cells, the unfinished cell's epoch
# checkpoint, errors) into $OUT/gpu_store.tgz with the logs.  `.carry/` is git-ignored; the data
# never enters the repository.  Each rerun resumes the sweep where the last one stopped.
# GPU_PAPER_DEVICE / GPU_PAPER_SWEEP / GPU_PAPER_STORE override cuda / gpu-paper / results/gpu
# (a dry run of the plumbing on a CPU machine: GPU_PAPER_DEVICE=cpu OUT=/tmp/o ... run 60).
set -uo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
STORE=${GPU_PAPER_STORE:-results/gpu}

case "$mode" in
stage)
    src=${FPIBENCH_DATA:?set FPIBENCH_DATA to the data directory (e.g. ../shared/data)}
    for d in dncnn/Train400 dncnn/BSD68 dncnn/Set12 flyingchairs_examples; do
        [ -d "$src/$d" ] || { echo "gpu_paper.sh stage: $src/$d is missing" >&2; exit 2; }
    done
    rm -rf .carry/data && mkdir -p .carry/data/dncnn
    cp -r "$src/dncnn/Train400" "$src/dncnn/BSD68" "$src/dncnn/Set12" .carry/data/dncnn/
    cp -r "$src/flyingchairs_examples" .carry/data/
    mkdir -p "$STORE/partial"
    du -sh .carry/data
    ;;
run)
    budget=${2:-500}
    start=$(date +%s)
    out=${OUT:?run on the device machine, where OUT is set}
    export FPIBENCH_DATA=$PWD/.carry/data PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
    py=${PYTHON:-python3}
    device=${GPU_PAPER_DEVICE:-cuda}
    sweep=${GPU_PAPER_SWEEP:-gpu-paper}
    { nvidia-smi -L 2>&1 || true; "$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"; } \
        | tee "$out/device.txt"
    if [ "$device" = cuda ]; then
        timeout 90 "$py" -m pytest -q -p no:cacheprovider -m cuda tests/test_core.py \
            > "$out/cuda_tests.log" 2>&1
        echo "cuda tests: rc=$? ($(tail -1 "$out/cuda_tests.log"))"
    fi
    left=$(( budget - ($(date +%s) - start) - 20 ))
    # SIGINT: the cell in progress stops like a Ctrl-C; its last finished epoch is on disk
    timeout -s INT -k 15 "$left" "$py" -m fpibench run --sweep "$sweep" --device "$device" --out "$STORE" \
        --workers 0 --quiet --no-report --reuse-stale > "$out/sweep.log" 2>&1
    echo "sweep: rc=$? after $(( $(date +%s) - start )) s (124: stopped at the deadline, resumes next time)"
    tail -3 "$out/sweep.log"
    "$py" -m fpibench run --sweep "$sweep" --device "$device" --out "$STORE" --dry-run | tail -1
    tar czf "$out/gpu_store.tgz" -C "$(dirname "$STORE")" "$(basename "$STORE")"
    ls -la "$out"
    ;;
unpack)
    dir=${2:?give the folder that the device call returned its files to}
    mkdir -p "$(dirname "$STORE")" && tar xzf "$dir/gpu_store.tgz" -C "$(dirname "$STORE")" || exit 1
    cp "$dir"/device.txt "$dir"/*.log "$STORE/" 2>/dev/null || true
    "${PYTHON:-python}" -m fpibench run --sweep "${GPU_PAPER_SWEEP:-gpu-paper}" --device cpu --out "$STORE" --dry-run | tail -1
    ;;
*)
    sed -n 2,14p "$0"
    exit 2
    ;;
esac
