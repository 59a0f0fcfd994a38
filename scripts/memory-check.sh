#!/usr/bin/env bash
# What a folder of images costs in memory, with and without --cache: copies a folder of photos
# COPIES times (each copy's bytes made unique, so the cache keys differ, the pixels do not),
# then runs `siamese evaluate` on 1 copy and on all of them at SIZE, in memory, with a new cache
# and with that cache warm, and prints one JSON line per run with its peak resident memory
# (GNU time's %M) and its wall time. A benchmark, not a test: run it by hand.
#
#   scripts/memory-check.sh PHOTOS [COPIES=4] [SIZE=224x224-rgb]
#
# PHOTOS holds one folder per class. Needs GNU time (/usr/bin/time).
set -euo pipefail
photos=${1:?usage: scripts/memory-check.sh PHOTOS [COPIES] [SIZE]}
copies=${2:-4}
size=${3:-224x224-rgb}
cd "$(dirname "$0")/.."
cargo build --release --bin siamese
siamese=target/release/siamese
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for copy in $(seq 1 "$copies"); do
  for class in "$photos"/*/; do
    name=$(basename "$class")
    mkdir -p "$work/all/$name"
    [ "$copy" = 1 ] && mkdir -p "$work/one/$name"
    for file in "$class"*; do
      target="$work/all/$name/$copy-$(basename "$file")"
      # Bytes after an image's end are ignored by its decoder.
      { cat "$file"; printf 'copy %s' "$copy"; } >"$target"
      [ "$copy" = 1 ] && cp "$target" "$work/one/$name/"
    done
  done
done

# Any model of this size serves: one epoch on 40 images of each class.
mkdir -p "$work/few"
for class in "$work"/one/*/; do
  mkdir -p "$work/few/$(basename "$class")"
  find "$class" -type f | sort | head -40 | xargs -I{} cp {} "$work/few/$(basename "$class")/"
done
"$siamese" train --data "$work/few" --image-size "$size" --epochs 1 --save "$work/model.siamese" \
  >/dev/null 2>&1

measure() { # label folder [--cache dir]
  local label=$1 folder=$2
  shift 2
  local images
  images=$(find "$folder" -type f | wc -l)
  /usr/bin/time -f '%M %e' -o "$work/time" \
    "$siamese" evaluate --model "$work/model.siamese" --data "$folder" "$@" >/dev/null 2>&1
  read -r peak_kb wall_s <"$work/time"
  printf '{"runner":"siamese evaluate","images":%s,"size":"%s","store":"%s","peak_rss_mb":%.0f,"wall_s":%s}\n' \
    "$images" "$size" "$label" "$((peak_kb / 1024))" "$wall_s"
}

for folder in one all; do
  measure memory "$work/$folder"
  rm -rf "$work/cache"
  measure "new cache" "$work/$folder" --cache "$work/cache"
  measure "warm cache" "$work/$folder" --cache "$work/cache"
done
