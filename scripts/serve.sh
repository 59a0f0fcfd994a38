#!/usr/bin/env bash
# Builds the app (release) and serves it on http://127.0.0.1:8080/, installing missing tools first.
#   scripts/serve.sh [extra trunk serve options]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-tools.sh serve
export PATH="$PWD/node_modules/.bin:$PATH" # binaryen's wasm-opt, which Trunk.toml pins
exec trunk serve --release "$@"
