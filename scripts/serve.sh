#!/usr/bin/env bash
# Serves the app on http://127.0.0.1:8080/, installing missing tools first, and rebuilds and
# reloads the page when a source file changes.
#   scripts/serve.sh [trunk serve options]             the edit loop: the full module in the
#       deployed build's Cargo profile, the CPU-only one in the release profile, which relinks it
#       faster (index.html), in the same target/ as the tests, without wasm-opt, served from
#       target/serve-dist so dist/ keeps the deployed build
#   scripts/serve.sh --release [trunk serve options]   the deployed build: wasm-opt -O1 as well
#       (~2 minutes here, then remembered for an unchanged module: scripts/bin/wasm-opt)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-tools.sh serve
export PATH="$PWD/scripts/bin:$PWD/node_modules/.bin:$PATH" # wasm-opt, which Trunk.toml pins
for arg in "$@"; do
  [ "$arg" = --release ] && exec trunk serve "$@"
done
# Trunk skips wasm-opt when not in release mode; each module's data-cargo-profile-dev in
# index.html names its Cargo profile.
exec trunk serve --release=false --dist target/serve-dist "$@"
