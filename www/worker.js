// The training worker: probes WebGPU, loads one of the two wasm modules relative to this file
// and hands over to Rust (src/web/worker.rs), which answers the page's messages. The full module
// (siamese-web, with WebGPU) is loaded where the adapter is a real GPU, when the page asks for it
// (`?webgpu`, WebGPU chosen), or where the browser lacks relaxed SIMD; elsewhere the CPU-only one
// (siamese-web-cpu), a quarter of its download, since WebGPU would not be used there
// (features.js).
import { chooseModule, hasRelaxedSimd, probeWebGpu } from './features.js';

/** helper.js beside this file, told which module it instantiates; from another origin (a CDN)
 * through a same-origin blob, as trainer.js starts this worker. */
function helperScript(module) {
  const url = new URL(`./helper.js?module=${module}`, import.meta.url);
  if (url.origin === location.origin) return url.href;
  return URL.createObjectURL(new Blob([`import ${JSON.stringify(url.href)};`], { type: 'text/javascript' }));
}

try {
  const webgpu = await probeWebGpu();
  const asked = new URL(import.meta.url).searchParams.has('webgpu');
  const module = chooseModule(webgpu.kind, asked, hasRelaxedSimd());
  const { default: init, startWorker } = await import(new URL(`../${module}.js`, import.meta.url).href);
  await init({ module_or_path: new URL(`../${module}_bg.wasm`, import.meta.url) });
  startWorker(helperScript(module), webgpu);
} catch (error) {
  postMessage({ type: 'error', fatal: true, message: `the WebAssembly module failed to load: ${error}` });
}
