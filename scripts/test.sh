#!/usr/bin/env bash
# Runs every test: formatting, the native Rust tests (core, loss, pairs, images, a real training
# run), the release build of the app, and the end-to-end tests in headless Chromium.
# Installs what is missing first (scripts/install-tools.sh); a warm machine skips all of it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-tools.sh test
export PATH="$PWD/node_modules/.bin:$PATH"

step() { printf '\n==> %s (%s)\n' "$*" "$(date +%T)"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "native tests (cargo test --release)"
cargo test --release

step "release build of the app (trunk build --release -> dist/)"
trunk build --release

step "browser tests (node --test tests/e2e, headless Chromium)"
node --test --test-concurrency=1 tests/e2e/
