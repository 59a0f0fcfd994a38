// The training worker: loads the wasm module relative to this file and hands over to Rust
// (src/web/worker.rs), which answers the page's messages.
import init, { startWorker } from '../siamese-web.js';

try {
  await init({ module_or_path: new URL('../siamese-web_bg.wasm', import.meta.url) });
  startWorker();
} catch (error) {
  postMessage({ type: 'error', fatal: true, message: `the WebAssembly module failed to load: ${error}` });
}
