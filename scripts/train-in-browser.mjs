// Trains the built-in digits in headless Chromium through the page's deep link, as a user would,
// and prints the page's result JSON (the figures README and the issue notes quote).
//
//   node scripts/train-in-browser.mjs [--backend cpu|webgpu|auto] [--epochs 3] [--seed 42]
//                                     [--workers N] [--dist dist]
//
// --workers: the CPU workers that share each batch (the page's default: one per core, up to 8).
//
// Needs dist/ (trunk build --release, or scripts/test.sh), or --dist: a copy of it from another
// commit. Progress goes to stderr.
import { serveStatic } from '../tests/e2e/server.js';
import { launchChromium, waitForRun } from '../tests/e2e/browser.js';

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? args[at + 1] : fallback;
};
const query = new URLSearchParams({
  dataset: 'mnist', autostart: 1, backend: option('backend', 'cpu'), epochs: option('epochs', 3), seed: option('seed', 42),
});
if (option('workers')) query.set('workers', option('workers'));

const server = await serveStatic(option('dist', new URL('../dist', import.meta.url).pathname));
const browser = await launchChromium();
try {
  const page = await browser.newPage();
  page.on('console', (message) => process.stderr.write(`[page] ${message.text()}\n`));
  await page.goto(`http://127.0.0.1:${server.address().port}/index.html?${query}`);
  const ticker = setInterval(async () => {
    const text = await page.locator('#progress-text').innerText().catch(() => '');
    process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${text}\n`);
  }, 60_000);
  const run = await waitForRun(page, 0);
  clearInterval(ticker);
  if (run.state !== 'done') throw new Error(`the run failed: ${run.error ?? run.messages}`);
  console.log(run.result);
} finally {
  await browser.close();
  server.close();
}
