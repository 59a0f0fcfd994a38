#!/usr/bin/env bash
# The GPU figures, ready for the day a machine with an NVIDIA GPU is at hand (CI has none; not
# part of the tests). Builds the command line with CUDA and Vulkan, lists the devices it finds,
# then trains the digits job (the article's settings, batch 64, then batch 1,024) on each GPU and
# on the CPU, and prints one JSON line per run: its device, batch, pairs/s and test accuracy.
# Then the speed against PyTorch, in the same run: our benchmark (bench_steps) and the same job
# in PyTorch (scripts/torch_peer.py, when `python3 -c "import torch"` works) on each CUDA device
# and the CPU, at both batches, one line each, then their ratio.
#
#   scripts/gpu-check.sh [--epochs N]     (default 1)
#
# The CUDA build downloads Tracel's LLVM bundle (cubecl-llvm's build script): without the
# internet the script falls back to Vulkan alone. Needs at run time: for CUDA the NVIDIA driver, NVRTC and the toolkit's headers (a CUDA
# `-devel` image, or CUDA_PATH); for Vulkan `libvulkan1` and the driver's ICD file (in a container,
# NVIDIA_DRIVER_CAPABILITIES must include `graphics`). With two CUDA devices or more, the digits
# job also trains on all of them at once (burn-train, data-parallel) at batches of 64, 1,024 and
# 4,096: the scaling across GPUs.
set -euo pipefail
cd "$(dirname "$0")/.."

epochs=1
[ "${1:-}" = --epochs ] && epochs=$2

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv
features=cuda,vulkan
if ! cargo build --release --locked --features "$features" --bin siamese --example bench_steps; then
  # Offline, the LLVM bundle can be put in place by hand (~/.local/share/tracel/tracel-llvm-*).
  echo "gpu-check: the CUDA build failed (it downloads Tracel's LLVM bundle); Vulkan alone" >&2
  features=vulkan
  cargo build --release --locked --features "$features" --bin siamese --example bench_steps
fi
siamese=target/release/siamese
devices=$("$siamese" devices)
echo "$devices"

run() {
  local device=$1 batch=$2
  local line
  if line=$("$siamese" train --mnist --epochs "$epochs" --batch "$batch" --device "$device" 2>"target/gpu-check-$device-$batch.log" | tail -n 1); then
    node -e 'const r = JSON.parse(process.argv[1]); console.log(JSON.stringify({ device: process.argv[2], batch: +process.argv[3],
      pairs_per_s: r.pairs_per_s, train_s: r.train_s, test_acc: r.test_acc, test_acc_best: r.test_acc_best, auc: r.auc }));' \
      "$line" "$device" "$batch"
  else
    echo "{\"device\":\"$device\",\"batch\":$batch,\"error\":$(tail -n 1 "target/gpu-check-$device-$batch.log" | node -e 'process.stdin.on("data", (d) => process.stdout.write(JSON.stringify(String(d).trim())))')}"
  fi
}

for device in $(node -e 'console.log(JSON.parse(process.argv[1]).devices.join(" "))' "$devices"); do
  for batch in 64 1024; do
    run "$device" "$batch"
  done
done

all_cuda=$(node -e 'console.log(JSON.parse(process.argv[1]).devices.filter((d) => d.startsWith("cuda")).join(","))' "$devices")
if [[ "$all_cuda" == *,* ]]; then
  for batch in 64 1024 4096; do
    run "$all_cuda" "$batch"
  done
fi

python=${PYTHON:-python3}
if ! "$python" -c 'import torch' 2>/dev/null; then
  echo "gpu-check: no PyTorch for $python (set PYTHON=...): no peer figures" >&2
  exit 0
fi
for device in $(node -e 'console.log(JSON.parse(process.argv[1]).devices.filter((d) => d === "cpu" || d.startsWith("cuda")).join(" "))' "$devices"); do
  for batch in 64 1024; do
    ours=$(target/release/examples/bench_steps --backend "$device" --batch "$batch" --layer-repeats 0 2>/dev/null | tail -n 1)
    peer=$("$python" scripts/torch_peer.py --device "$device" --batch "$batch" --steps 30 | tail -n 1)
    echo "$ours"
    echo "$peer"
    node -e 'const [ours, peer] = process.argv.slice(1, 3).map(JSON.parse); console.log(JSON.stringify({ device: process.argv[3],
      batch: ours.batch, ours_pairs_per_s: ours.pairs_per_s, pytorch_pairs_per_s: peer.pairs_per_s, ratio: ours.pairs_per_s / peer.pairs_per_s }));' \
      "$ours" "$peer" "$device"
  done
done
