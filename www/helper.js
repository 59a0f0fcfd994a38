// A training helper (src/web/helpers.rs): the training worker starts it and posts it the
// compiled module first, so the module is instantiated here, not fetched and compiled again.
import init, { startHelper } from '../siamese-web.js';

onmessage = async ({ data }) => {
  onmessage = null; // startHelper() takes over the messages
  try {
    await init({ module_or_path: data.module });
    startHelper();
  } catch (error) {
    postMessage({ error: `the WebAssembly module failed to load in a helper: ${error}` });
  }
};
