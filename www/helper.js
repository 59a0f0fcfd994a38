// A training helper (src/web/helpers.rs): the training worker starts it, naming its module in
// the URL (`?module=siamese-web-cpu`), and posts it the compiled module first, so the module is
// instantiated here, not fetched and compiled again.
const asked = new URL(import.meta.url).searchParams.get('module');
const module = asked === 'siamese-web' ? asked : 'siamese-web-cpu';

onmessage = async ({ data }) => {
  onmessage = null; // startHelper() takes over the messages
  try {
    const { default: init, startHelper } = await import(new URL(`../${module}.js`, import.meta.url).href);
    await init({ module_or_path: data.module });
    startHelper();
  } catch (error) {
    postMessage({ error: `the WebAssembly module failed to load in a helper: ${error}` });
  }
};
