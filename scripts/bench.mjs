// The speed benchmark of PERFORMANCE.md: the fixed job in headless Chromium on each backend (the
// release build in dist/, as users get it), then natively; one JSON line per run on stdout.
//
//   node scripts/bench.mjs [--steps 30] [--webgpu-steps 8] [--batch 64] [--layer-repeats 10]
//                          [--webgpu-layer-repeats 2] [--backends cpu,webgpu] [--dist dist]
//                          [--no-native] [--no-tfjs] [--side-by-side N]
//
// Needs dist/ (trunk build --release, or scripts/test.sh) and the browser that the tests use.
// The peer, the same job in TensorFlow.js on its wasm backend (scripts/tfjs-peer/), runs in the
// same browser after our runs, and a last line gives our CPU path's pairs/s over the peer's.
// Three lines first give the code each kind of reader downloads.
// --side-by-side N runs N copies of the CPU job at once, each in a page of its own (independent
// workers that never talk to each other), and prints their sum over one copy alone: the most
// that N training workers could give on this machine, to read the page's worker figures against.
// --dist times another build (a copy of dist/ from another commit), so two builds compare in
// one run.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { serveStatic } from '../tests/e2e/server.js';
import { launchChromium } from '../tests/e2e/browser.js';

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? args[at + 1] : fallback;
};
const batch = Number(option('batch', 64));
const steps = Number(option('steps', 30));
const webgpuSteps = Number(option('webgpu-steps', 8));
// Each stage of the tower alone, forward and backward (layers_ms); 0 leaves them out.
const layerRepeats = Number(option('layer-repeats', 10));
const webgpuLayerRepeats = Number(option('webgpu-layer-repeats', 2));
const backends = option('backends', 'cpu,webgpu').split(',');
const dist = option('dist', new URL('../dist', import.meta.url).pathname);
const sideBySide = Number(option('side-by-side', 0));

// The code each kind of reader downloads before training starts (gzip level 9, data aside): the
// page's scripts, the glue and wasm of the module www/worker.js picks, and the helpers' script.
const gzipBytes = (path) => gzipSync(readFileSync(`${dist}/${path}`), { level: 9 }).length;
const pageScripts = ['chart.umd.min.js', ...readdirSync(`${dist}/www`)
  .filter((name) => name.endsWith('.js') && !['bench.js', 'widget.js'].includes(name)).map((name) => `www/${name}`)];
const download = (module) => [...pageScripts, `${module}.js`, `${module}_bg.wasm`]
  .reduce((sum, path) => sum + gzipBytes(path), 0);
const paths = [
  ['without a real GPU', 'siamese-web-cpu'],
  ['without a real GPU or relaxed SIMD (Safari)', 'siamese-web'],
  ['with a real GPU (WebGPU)', 'siamese-web'],
];
for (const [path, module] of paths) {
  console.log(JSON.stringify({ download: path, module: `${module}_bg.wasm`, code_gzip_bytes: download(module) }));
}
// Each run's line gives the size of the module it ran on.
const moduleSize = (module) => {
  const wasm = readFileSync(`${dist}/${module}_bg.wasm`);
  return { wasm_bytes: wasm.length, wasm_gzip_bytes: gzipSync(wasm, { level: 9 }).length };
};
const sizes = { full: moduleSize('siamese-web'), cpu: moduleSize('siamese-web-cpu') };

const server = await serveStatic(dist);
const browser = await launchChromium();
const lines = [];
const print = (line) => {
  lines.push(line);
  console.log(JSON.stringify(line));
};
try {
  // One page's run of the job: its lines.
  const benchPage = async (backend, count, repeats) => {
    const page = await browser.newPage();
    const query = new URLSearchParams({ backends: backend, batch, warmup: 3, steps: count, layer_repeats: repeats });
    await page.goto(`http://127.0.0.1:${server.address().port}/www/bench.html?${query}`);
    await page.waitForFunction(() => document.body.dataset.state === 'done', null, { timeout: 0, polling: 1000 });
    const runs = (await page.locator('#results').innerText()).trim().split('\n').map((line) => JSON.parse(line));
    await page.close();
    return runs;
  };
  const runs = [['cpu', steps, layerRepeats], ['webgpu', webgpuSteps, webgpuLayerRepeats]];
  for (const [backend, count, repeats] of runs.filter(([backend]) => backends.includes(backend))) {
    for (const run of await benchPage(backend, count, repeats)) {
      print({ ...run, runner: 'chromium', ...sizes[run.webgpu_module ? 'full' : 'cpu'] });
    }
  }
  if (sideBySide > 0) {
    const copies = (await Promise.all(Array.from({ length: sideBySide }, () => benchPage('cpu', steps, 0)))).flat();
    const failed = copies.find((run) => run.error);
    if (failed) throw new Error(`a side-by-side copy failed: ${failed.error}`);
    const each = copies.map((run) => run.pairs_per_s);
    const sum = each.reduce((total, value) => total + value, 0);
    const alone = lines.find((line) => line.backend === 'cpu')?.pairs_per_s;
    print({ runner: 'chromium', backend: 'cpu', side_by_side: sideBySide, pairs_per_s_each: each,
      pairs_per_s_sum: sum, sum_over_one_alone: alone ? sum / alone : null });
  }
  if (!args.includes('--no-tfjs')) {
    const repository = await serveStatic(new URL('..', import.meta.url).pathname);
    const page = await browser.newPage();
    const query = new URLSearchParams({ batch, warmup: 3, steps });
    await page.goto(`http://127.0.0.1:${repository.address().port}/scripts/tfjs-peer/index.html?${query}`);
    await page.waitForFunction(() => document.body.dataset.state === 'done', null, { timeout: 0, polling: 1000 });
    print(JSON.parse(await page.locator('#results').innerText()));
    await page.close();
    repository.close();
    const [ours, peer] = ['cpu', 'tfjs-wasm'].map((backend) => lines.find((line) => line.backend === backend)?.pairs_per_s);
    if (ours && peer) print({ ratio: 'cpu (one worker) over tfjs-wasm (one thread), pairs/s', value: ours / peer });
  }
} finally {
  await browser.close();
  server.close();
}

if (!args.includes('--no-native')) {
  const line = execFileSync('cargo', ['run', '--release', '--quiet', '--example', 'bench_steps', '--',
    '--backend', 'flex', '--batch', String(batch), '--steps', String(steps),
    '--layer-repeats', String(layerRepeats)], { encoding: 'utf8' }).trim();
  console.log(JSON.stringify({ ...JSON.parse(line), wasm_bytes: null, wasm_gzip_bytes: null }));
}
