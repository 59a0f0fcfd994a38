// Runs the benchmark job of PERFORMANCE.md in this browser's worker, one backend after another,
// and writes one JSON line per backend into #results (scripts/bench.mjs reads them).
import { TrainerWorker, MNIST_URL } from './trainer.js';

const params = new URLSearchParams(location.search);
const backends = /** @type {import('./messages').BackendChoice[]} */ ((params.get('backends') ?? 'cpu,webgpu').split(','));
const number = (name, fallback) => Number(params.get(name) ?? fallback);
const job = {
  batch: number('batch', 64), warmup: number('warmup', 3), steps: number('steps', 30),
  layer_repeats: number('layer_repeats', 10),
};
const results = document.getElementById('results');
const pending = [...backends];
let current = null;
let readyMs = null;
let webgpuModule = null;

function report(line) {
  results.textContent += `${JSON.stringify({ runner: 'browser', page_to_ready_ms: readyMs, webgpu_module: webgpuModule, ...line })}\n`;
}

function next() {
  current = pending.shift();
  if (current === undefined) {
    document.body.dataset.state = 'done';
    return;
  }
  document.body.dataset.state = `running ${current}`;
  trainer.send({ type: 'benchmark', backend: current, job });
}

const trainer = new TrainerWorker((message) => {
  switch (message.type) {
    case 'ready':
      readyMs = Math.round(performance.now());
      webgpuModule = message.webgpu_module;
      trainer.send({ type: 'use_mnist', url: MNIST_URL, train_images: null, test_images: null });
      break;
    case 'dataset_loaded':
      next();
      break;
    case 'benchmark': {
      const { type, id, ...result } = message;
      report(result);
      next();
      break;
    }
    case 'error':
      report({ backend: current, error: message.message });
      if (message.fatal) document.body.dataset.state = 'done';
      else next();
      break;
  }
// The module a reader gets: the CPU-only one, unless WebGPU is among the backends timed.
}, { webgpuModule: backends.includes('webgpu') });
