// The training worker: loads the wasm module relative to this file and hands over to Rust
// (src/web/worker.rs), which answers the page's messages.
import init, { startWorker } from '../siamese-web.js';

/** helper.js beside this file; from another origin (a CDN) through a same-origin blob, as
 * trainer.js starts this worker. */
function helperScript() {
  const url = new URL('./helper.js', import.meta.url);
  if (url.origin === location.origin) return url.href;
  return URL.createObjectURL(new Blob([`import ${JSON.stringify(url.href)};`], { type: 'text/javascript' }));
}

try {
  await init({ module_or_path: new URL('../siamese-web_bg.wasm', import.meta.url) });
  startWorker(helperScript());
} catch (error) {
  postMessage({ type: 'error', fatal: true, message: `the WebAssembly module failed to load: ${error}` });
}
