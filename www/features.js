// Which of the two wasm modules the training worker (worker.js) loads. The CPU-only module
// (siamese-web-cpu) is built with relaxed SIMD's fused multiply-add (Cargo.toml's `relaxed-simd`)
// and does not load where it is missing (Safari, Chrome before 114, Firefox before 145); the full
// module (siamese-web: WebGPU, and the CPU path with simd128 alone) loads everywhere.

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
