// Which of the two wasm modules the training worker (worker.js) loads, and what it downloads.
// The CPU-only module (siamese-web-cpu) is built with relaxed SIMD's fused multiply-add
// (Cargo.toml's `relaxed-simd`) and does not load where it is missing (Safari, Chrome before
// 114, Firefox before 145); the full module (siamese-web: WebGPU, and the CPU path with simd128
// alone) loads everywhere.

/** A module of one function, `() -> v128`, that multiplies and adds three zero vectors with
 * `f32x4.relaxed_madd`: it validates only where relaxed SIMD is. */
const RELAXED_SIMD_PROBE = (() => {
  const zeros = [0xfd, 0x0c, ...new Array(16).fill(0)]; // v128.const 0
  const body = [0x00, ...zeros, ...zeros, ...zeros, 0xfd, 0x85, 0x02, 0x0b]; // no locals … end
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // "\0asm", version 1
    0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b, // types: () -> v128
    0x03, 0x02, 0x01, 0x00, // functions: one of type 0
    0x0a, body.length + 2, 0x01, body.length, ...body, // code
  ]);
})();

/** What WebGPU this browser offers: a WebGpuSupport of src/session/messages.rs.
 * @returns {Promise<import('./messages').WebGpuSupport>} */
export async function probeWebGpu() {
  const gpu = /** @type {any} */ (navigator).gpu; // not in TypeScript's DOM types yet
  if (!gpu) return { kind: 'missing', reason: 'this browser has no WebGPU (navigator.gpu is missing)' };
  const adapter = await gpu.requestAdapter().catch(() => null);
  if (!adapter) return { kind: 'missing', reason: 'the browser offers no WebGPU adapter' };
  const info = adapter.info ?? {};
  const name = [info.vendor, info.architecture, info.description].filter(Boolean).join(' ');
  // `isFallbackAdapter` moved from the adapter to its info; older browsers have only the first.
  const fallback = info.isFallbackAdapter === true || adapter.isFallbackAdapter === true;
  return { kind: fallback || /swiftshader/i.test(name) ? 'software' : 'hardware', adapter: name };
}

export function hasRelaxedSimd() {
  return WebAssembly.validate(RELAXED_SIMD_PROBE);
}

/**
 * @param {'hardware' | 'software' | 'missing'} webgpu the kind of WebGPU adapter found
 * @param {boolean} askedForWebGpu the page asks for WebGPU (`?webgpu`) even on a software adapter
 * @param {boolean} relaxedSimd what `hasRelaxedSimd()` says
 * @returns {'siamese-web' | 'siamese-web-cpu'}
 */
export function chooseModule(webgpu, askedForWebGpu, relaxedSimd) {
  const wantsWebGpu = webgpu === 'hardware' || (askedForWebGpu && webgpu !== 'missing');
  return wantsWebGpu || !relaxedSimd ? 'siamese-web' : 'siamese-web-cpu';
}

/**
 * The bytes the training worker will download before it is ready: the module it will choose and
 * its glue, and `extra` (the data), as the server gives their sizes (a compressed size where it
 * compresses); null where it does not say.
 * @param {boolean} askedForWebGpu @param {string[]} extra URLs
 * @returns {Promise<number | null>}
 */
export async function downloadBytes(askedForWebGpu, extra = []) {
  const module = chooseModule((await probeWebGpu()).kind, askedForWebGpu, hasRelaxedSimd());
  const files = [`${module}_bg.wasm`, `${module}.js`].map((name) => new URL(`../${name}`, import.meta.url).href);
  const sizes = await Promise.all([...files, ...extra].map(async (url) => {
    const response = await fetch(url, { method: 'HEAD' }).catch(() => null);
    const length = response?.ok ? Number(response.headers.get('content-length')) : NaN;
    return length > 0 ? length : null;
  }));
  return sizes.includes(null) ? null : sizes.reduce((sum, size) => sum + size, 0);
}
