#!/usr/bin/env bash
# Runs every test: formatting, the native Rust tests (core, loss, pairs, images, the session's
# commands, a real training run; the CPU backend only), the type check of the front end against
# the declarations generated from the Rust messages, the release build of the app, the edit loop
# of scripts/serve.sh, the end-to-end tests of the page in headless Chromium, and the core's
# tests in headless Chrome (WebGPU) and Firefox (CPU) through wasm-pack.
# Installs what is missing first (scripts/install-tools.sh); a warm machine skips all of it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-tools.sh test
# scripts/bin/wasm-opt remembers its outputs: an unchanged module is not optimised again.
export PATH="$PWD/scripts/bin:$PWD/node_modules/.bin:$PATH"

step() { printf '\n==> %s (%s)\n' "$*" "$(date +%T)"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "native tests (cargo test --release)"
cargo test --release

# www/messages.d.ts is checked against the Rust types by the native tests above; this checks
# the front end's JavaScript against it.
step "type check of the front end (tsc --checkJs against the generated www/messages.d.ts)"
tsc -p .

step "release build of the app (trunk build --release -> dist/)"
trunk build --release

# The README's other command: the page answers, and reloads rebuilt after a Rust file is edited.
step "scripts/serve.sh: start, edit, reload (scripts/serve-timing.mjs)"
node scripts/serve-timing.mjs

# A test that fails before closing a browser it opened would keep its file's process alive, and
# the run would wait for it forever: the runner ends each file when its tests are done, and a
# test that hangs fails after 10 minutes (the longest takes ~1.5 here).
step "browser tests of the page (node --test tests/e2e, headless Chromium)"
node --test --test-concurrency=1 --test-force-exit --test-timeout=600000 tests/e2e/

# The core in browsers' dedicated workers (tests/in_browser.rs), optimised like the app: Chrome's
# run, with WebGPU and the full module's simd128 CPU kernels, is built in the full module's
# profile (wasm-deploy) and reuses its wasm32 dependencies built above; the test's own
# whole-program link takes ~5 minutes here (in the release profile it would rebuild Burn with
# wgpu instead, which nothing before it builds). Firefox's (ESR 153 has relaxed SIMD) tests the
# CPU-only module's relaxed-SIMD kernels in the release profile; it rebuilds Burn's crates (~2
# minutes here), as the test build's ts-rs turns on a feature of thiserror that the module's
# build leaves off. A whole run takes ~2 minutes here; the runner's 20 s default is too short
# for training.
# wasm-pack finds wasm-bindgen, chromedriver and geckodriver on PATH and downloads nothing.
export WASM_BINDGEN_TEST_TIMEOUT=600
step "wasm-pack test --headless --chrome (WebGPU, the full module's CPU kernels)"
wasm-pack test --headless --chrome -- --profile wasm-deploy --test in_browser --features webgpu-tests
step "wasm-pack test --headless --firefox (the CPU-only module's kernels)"
wasm-pack test --headless --firefox --release -- --test in_browser --features relaxed-simd
