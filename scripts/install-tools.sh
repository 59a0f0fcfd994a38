#!/usr/bin/env bash
# Installs what building, serving and testing siamese-web needs, skipping whatever is already
# there, so a warm machine pays nothing. Everything comes from the package registries
# (crates.io, npm, Debian): no tool is allowed to download binaries of its own.
#
#   scripts/install-tools.sh [serve|test]   (default: test, which is a superset of serve)
set -euo pipefail
cd "$(dirname "$0")/.."

want=${1:-test}
log() { printf '[install-tools] %s\n' "$*" >&2; }

# The wasm-bindgen CLI must match the crate exactly; Cargo.toml pins it with "=x.y.z".
WASM_BINDGEN_VERSION=$(sed -n 's/^wasm-bindgen = { version = "=\([0-9.]*\)".*/\1/p; s/^wasm-bindgen = "=\([0-9.]*\)"/\1/p' Cargo.toml | head -n1)
TRUNK_VERSION=0.21.14 # trunk 0.22 needs a newer rustc than the machine's 1.95

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  log "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

# Trunk runs Cargo with --offline (Trunk.toml): the crates of every target, wasm32's too, must be
# downloaded before it builds.
cargo fetch --locked

need_wasm_bindgen=$([ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WASM_BINDGEN_VERSION" ] && echo yes || true)
need_trunk=$([ "$(trunk --version 2>/dev/null | awk '{print $2}')" != "$TRUNK_VERSION" ] && echo yes || true)

# Where the tools are missing, the app's first wasm32 builds, the longest step of a fresh machine,
# run beside their builds instead of after them, in trunk, so that the cores their serial
# stretches leave idle build the tools (niced): 24.6 minutes to the first page here (23.9 and
# 28.7 in two runs without nice), where the parts timed alone add up to ~27. They are the two
# modules index.html names, built as trunk builds them (the full one with WebGPU in the deployed
# profile, then the CPU-only one: in the deployed profile for the tests, in the release profile
# for serve.sh's edit loop), so that trunk's own Cargo builds then find them done.
app_build= tool_build=
if [ -n "$need_wasm_bindgen$need_trunk" ]; then
  mkdir -p target
  log "building the app's two wasm32 modules beside the tools; their log: target/first-app-build.log"
  cpu_module_profile=$([ "$want" = serve ] && echo release || echo wasm-deploy)
  {
    cargo build --profile wasm-deploy --target wasm32-unknown-unknown --locked -p siamese-web --lib --features wgpu &&
      cargo build --profile "$cpu_module_profile" --target wasm32-unknown-unknown --locked -p siamese-web-cpu
  } >target/first-app-build.log 2>&1 &
  app_build=$!
  # The app's build is the critical path: the tools' builds take the cores it leaves idle.
  tool_build='nice -n 19'
  trap '[ -z "$app_build" ] || { pkill -P "$app_build"; kill "$app_build"; } 2>/dev/null || true' EXIT
fi
finish_app_build() {
  [ -n "$app_build" ] || return 0
  if kill -0 "$app_build" 2>/dev/null; then
    log "the tools are ready; the app's first build goes on (target/first-app-build.log):"
    tail -n 2 -f --pid="$app_build" target/first-app-build.log >&2 || true
  fi
  wait "$app_build" || log "the app's build failed (target/first-app-build.log); trunk builds it again and shows why"
  app_build=
}

if [ -n "$need_wasm_bindgen" ]; then
  log "building wasm-bindgen-cli $WASM_BINDGEN_VERSION (a few minutes)"
  # --locked fails for this crate's published lockfile; the exact version pin is what matters.
  $tool_build cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
fi

if [ -n "$need_trunk" ]; then
  log "building trunk $TRUNK_VERSION (about 6 minutes on 2 cores)"
  # Trunk's own release profile (fat LTO, one codegen unit) takes ~17 minutes here; it only runs
  # Cargo and wasm-bindgen, copies files and serves them, so it is built without LTO at opt-level 1.
  CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 CARGO_PROFILE_RELEASE_OPT_LEVEL=1 \
    $tool_build cargo install trunk --version "$TRUNK_VERSION" --locked --force
fi

if [ ! -x node_modules/.bin/wasm-opt ] || [ ! -d node_modules/playwright-core ] || [ ! -d node_modules/puppeteer-core ] || [ ! -x node_modules/.bin/tsc ] || [ ! -d node_modules/axe-core ] || [ ! -d node_modules/@tensorflow/tfjs-backend-wasm ]; then
  log "installing npm packages (binaryen's wasm-opt, chart.js, playwright-core, puppeteer-core, typescript, axe-core, TensorFlow.js for the benchmark's peer)"
  npm ci --no-audit --no-fund
fi

if [ "$want" = serve ]; then
  finish_app_build
  exit 0
fi

# Browsers and their drivers: Chromium (WebGPU through SwiftShader) and Firefox ESR (the CPU path).
apt_missing=()
command -v chromium >/dev/null || apt_missing+=(chromium)
command -v chromedriver >/dev/null || apt_missing+=(chromium-driver)
command -v firefox-esr >/dev/null || apt_missing+=(firefox-esr)
if [ ${#apt_missing[@]} -gt 0 ]; then
  log "installing ${apt_missing[*]} from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_missing[@]}"
fi

if ! command -v geckodriver >/dev/null; then
  log "building geckodriver (a few minutes)"
  cargo install geckodriver --locked
fi

if ! command -v wasm-pack >/dev/null; then
  log "building wasm-pack (a few minutes)"
  cargo install wasm-pack --locked
fi

finish_app_build
