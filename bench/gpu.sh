#!/usr/bin/env bash
# GPU benchmarks of VGGT-1B in one go, for a CUDA machine with PyTorch, no TensorRT and no internet.
#
#     bash bench/gpu.sh OUT_DIR                  # from a checkout: no install, PYTHONPATH is set here
#     bash bench/gpu.sh OUT_DIR --cpu-dry-run    # the same steps on the CPU with the tiny fixture and tiny sizes
#
# Needs torch, numpy, pillow and safetensors importable (open3d optional: without it the streaming step skips
# the map; without torchao the torchao variant of step 4 is skipped). VGGT-1B is built with random weights
# (torch.manual_seed(0)): nothing is downloaded. Each step has its own timeout, writes its JSON and log into OUT_DIR,
# and a failed step does not stop the next; the whole run stays under 8 minutes, the device call it is made for
# (timeouts 20 + 145 + 115 + 85 + 80 s, each + 5 s to kill: 470 s at most, the summary and start-up within the
# rest). A summary ends the run (also written to OUT_DIR/summary.txt). PYTHON picks the
# interpreter (default: python3, else python).
#
#   1. backends.json    bench/backends.py: per-stage ms and TFLOP/s at S = 1, 2, 4, 8, 16 at 350x518, bf16 and
#                       fp16, flash attention (torch.nn.attention.sdpa_kernel) in the encoder and the aggregator
#   2. streaming.json   bench/streaming.py: the session at window 8, stride 1, bf16, flash: ms per new keyframe end
#                       to end, full recompute against incremental, per stage and per session step, peak memory
#   3. cuda_graphs.json bench/cuda_graphs.py: the aggregator at S = 8, and the incremental window's aggregator and
#                       heads, eager against a replayed torch.cuda.CUDAGraph
#   4. quantization.json bench/quantization.py: bf16 against W4A16 (the packed export's unpack-then-matmul path,
#                       torch's tinygemm INT4 kernel, torchao's INT4 weight-only) and FP8 matmuls (torch._scaled_mm,
#                       Ada / Hopper) at S = 2 and 8, 350x518: ms, peak memory, weight bytes, error against FP32
set -u

if [ $# -lt 1 ] || [ $# -gt 2 ] || { [ $# -eq 2 ] && [ "$2" != "--cpu-dry-run" ]; }; then
    echo "usage: bash bench/gpu.sh OUT_DIR [--cpu-dry-run]" >&2
    exit 2
fi
mkdir -p "$1"
OUT=$(cd "$1" && pwd)
DRY_RUN=${2:-}
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD
PYTHON=${PYTHON:-$(command -v python3 || command -v python)}
STEPS=()

# step NAME TIMEOUT_S COMMAND...: run with a timeout, log to OUT/NAME.log, record the outcome.
step() {
    local name=$1 limit=$2
    shift 2
    echo "== $name (at most ${limit} s)"
    local start=$SECONDS
    timeout --kill-after=5 "$limit" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    local outcome="ok"
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        outcome="TIMED OUT after ${limit} s"
    elif [ $rc -ne 0 ]; then
        outcome="FAILED (exit $rc): $(tail -n 1 "$OUT/$name.log")"
    fi
    echo "   $outcome, $((SECONDS - start)) s; log: $OUT/$name.log"
    STEPS+=("$name: $outcome, $((SECONDS - start)) s")
}

if [ "$DRY_RUN" = "--cpu-dry-run" ]; then
    DEVICE=cpu
    BACKENDS_ARGS=(--model tiny --frames 1 2 --height 42 --width 56 --warmup 0 --repeats 1)
    STREAMING_ARGS=(--models tiny --tiny-hw 42x56 --warmup 0 --windows 1)
    GRAPHS_ARGS=(--height 42 --width 56 --warmup 0 --repeats 1)
    QUANTIZATION_ARGS=(--model tiny --frames 1 2 --height 28 --width 42 --warmup 0 --repeats 1)
else
    DEVICE=cuda
    BACKENDS_ARGS=(--model full --frames 1 2 4 8 16 --height 350 --width 518 --warmup 2 --repeats 5)
    STREAMING_ARGS=(--models full --full-hw 350x518 --warmup 2 --windows 5)
    GRAPHS_ARGS=(--height 350 --width 518 --warmup 3 --repeats 20)
    QUANTIZATION_ARGS=(--model full --frames 2 8 --height 350 --width 518 --warmup 2 --repeats 5)
fi

step environment 20 "$PYTHON" -c "
import importlib.util, platform, torch
print('python', platform.python_version(), 'torch', torch.__version__, 'CUDA', torch.version.cuda)
for module in ('numpy', 'PIL', 'safetensors', 'onnx', 'open3d'):
    print(module, 'importable' if importlib.util.find_spec(module) else 'MISSING')
if '$DEVICE' == 'cuda':
    if not torch.cuda.is_available():
        raise SystemExit('CUDA is not available to torch: this script benchmarks a GPU (try --cpu-dry-run)')
    print(torch.cuda.get_device_name(), torch.cuda.get_device_properties(0).total_memory // 2**30, 'GiB')
"
cat "$OUT/environment.log"
echo
if [[ ${STEPS[0]} != "environment: ok"* ]]; then
    echo "environment check failed: stopping" >&2
    exit 1
fi

step backends 145 "$PYTHON" bench/backends.py --backends torch --device $DEVICE --precision bf16 fp16 --sdpa flash \
    "${BACKENDS_ARGS[@]}" --json "$OUT/backends.json"
step streaming 115 "$PYTHON" bench/streaming.py --device $DEVICE --precision bf16 --sdpa flash \
    --window-sizes 8 --strides 1 "${STREAMING_ARGS[@]}" --json "$OUT/streaming.json"
step cuda_graphs 85 "$PYTHON" bench/cuda_graphs.py --frames 8 --depth-frames 3 --precision bf16 --sdpa flash \
    "${GRAPHS_ARGS[@]}" --json "$OUT/cuda_graphs.json"
step quantization 80 "$PYTHON" bench/quantization.py --device $DEVICE "${QUANTIZATION_ARGS[@]}" \
    --json "$OUT/quantization.json"

"$PYTHON" - "$OUT" "${STEPS[@]}" <<'EOF' | tee "$OUT/summary.txt"
import json, sys
from pathlib import Path

out, steps = Path(sys.argv[1]), sys.argv[2:]


def load(name):
    path = out / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


print("\n== summary")
for line in steps:
    print("  " + line)
backends, streaming, graphs = load("backends"), load("streaming"), load("cuda_graphs")
quantization = load("quantization")
if backends:
    print(f"\nper-stage ms, {backends['image_hw'][0]}x{backends['image_hw'][1]}, attention {backends['sdpa']}, "
          f"{backends['machine']}")
    stages = list(backends["rows"][0]["stages_ms"])
    print(f"{'prec':<6}{'S':>4}" + "".join(f"{s:>13}" for s in stages) + f"{'total ms':>10}{'TFLOP':>8}{'TFLOP/s':>9}")
    for r in backends["rows"]:
        print(f"{r['precision']:<6}{r['frames']:>4}" + "".join(f"{r['stages_ms'][s]:>13.2f}" for s in stages)
              + f"{r['total_ms']:>10.1f}{r['tflop']:>8.2f}{r['tflops_per_s']:>9.1f}")
if streaming:
    settings = next(iter(streaming.values()))["settings"]
    print(f"\nstreaming session, ms per new keyframe ({settings['precision']}, attention {settings['sdpa']}, "
          f"map {settings['map']})")
    for key, entry in streaming.items():
        print(f"  {key}: VGGT-1B at 350x518 {entry['full_tflop']:.2f} TFLOP full, {entry['incremental_tflop']:.2f} "
              "incremental")
        for model, timing in entry.get("timing", {}).items():
            for mode in ("full", "incremental"):
                t = timing[mode]
                peak = f", peak {t['peak_gib']:.1f} GiB" if "peak_gib" in t else ""
                print(f"    {model} {timing['image_hw'][0]}x{timing['image_hw'][1]} {mode:<12} "
                      f"{t['ms_per_keyframe']:8.1f} ms, {t['tflops_per_s']:.1f} TFLOP/s{peak}, {t['statuses']}")
            print(f"    speed-up of the incremental path: {timing['speedup']:.2f}x")
if graphs:
    print(f"\nCUDA graphs, S = {graphs['frames']} ({graphs['precision']}, attention {graphs['sdpa']}, "
          f"peak {graphs['peak_gib']:.1f} GiB)")
    for part in ("aggregator", "window"):
        g = graphs[part]
        print(f"  {part:<11} eager {g['eager_ms']:8.2f} ms, graph {g['graph_ms']:8.2f} ms ({g['speedup']:.2f}x), "
              f"max |diff| {g['max_abs_difference']:.1e}")
if quantization:
    print(f"\nquantized variants, {quantization['image_hw'][0]}x{quantization['image_hw'][1]} (random weights: the "
          "errors are not accuracy figures)")
    baseline = {r["frames"]: r for r in quantization["rows"] if r["variant"] == "bf16"}
    for r in quantization["rows"]:
        base = baseline.get(r["frames"])
        speed = f" ({base['ms'] / r['ms']:.2f}x bf16)" if base else ""
        peak = f", peak {r['peak_gib']:.2f} GiB" if r["peak_gib"] is not None else ""
        weights = f", weights {r['weight_bytes_on_device'] / 2**20:.1f} MiB"
        e = r["error_vs_fp32"]
        print(f"  {r['variant']:<15} S={r['frames']:<3} {r['ms']:8.1f} ms{speed}{peak}{weights}; error vs FP32 "
              f"depth {e['depth_rel']:.2g} %, points {e['points_rel']:.2g} %, camera {e['camera_rel']:.2g} %")
    for variant, reason in quantization["skipped"].items():
        print(f"  {variant:<15} skipped: {reason}")
EOF
