// The full page: data, settings, training with live progress, results, comparison.
// All computation happens in the worker (src/web/worker.rs); this file only shows it.
import { TrainerWorker, readLabelledFiles, droppedFiles, thumbnailCanvas } from './trainer.js';
import { LossChart, histogramChart, rocChart } from './charts.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const MNIST_URL = new URL('../assets/mnist-10k.bin.gz', import.meta.url).href;

const state = { dataset: null, training: false, trained: false, runStarted: 0, histogram: null, roc: null };
const lossChart = new LossChart($('loss-chart'));
const trainer = new TrainerWorker(onWorkerMessage);

function setState(name) {
  document.body.dataset.state = name;
}

function refreshButtons() {
  const usable = state.dataset && !state.dataset.problem;
  $('train').disabled = state.training || !usable;
  $('stop').disabled = !state.training;
  $('use-mnist').disabled = state.training;
  $('compare').disabled = $('compare-random').disabled = state.training || !state.trained;
}

function showMessage(text, kind = 'error') {
  const item = document.createElement('p');
  item.className = kind;
  item.textContent = text;
  $('messages').prepend(item);
}

// ---- worker messages -------------------------------------------------------------------

function onWorkerMessage(message) {
  switch (message.type) {
    case 'ready':
      if (document.body.dataset.state === 'loading') setState('idle');
      refreshButtons();
      break;
    case 'dataset_loaded':
      showDataset(message);
      break;
    case 'backend':
      $('backend-status').textContent = `Training on ${message.backend === 'webgpu' ? 'WebGPU' : 'the CPU'}: ${message.reason}.`;
      break;
    case 'progress':
      showProgress(message);
      break;
    case 'epoch':
      lossChart.addEpoch(message);
      break;
    case 'done':
      showResults(message);
      break;
    case 'compared':
      showComparison(message);
      break;
    case 'error':
      onError(message);
      break;
  }
}

function onError({ message, fatal }) {
  showMessage(message);
  if (state.training || fatal) {
    state.training = false;
    document.body.dataset.error = message;
    setState('error');
  }
  if (fatal) {
    // The worker's wasm cannot continue after a panic; a fresh one needs the data again.
    state.dataset = null;
    state.trained = false;
    $('dataset-summary').textContent = 'The worker restarted: choose the data again.';
    trainer.restart();
  }
  refreshButtons();
}

// ---- data ------------------------------------------------------------------------------

function imageShape() {
  const [channels, height, width] = $('image-size').value.split(',').map(Number);
  return { channels, height, width };
}

function useMnist() {
  $('image-size').value = '1,28,28';
  $('dataset-summary').textContent = 'Loading the MNIST digits…';
  const sample = (name) => Number(params.get(name)) || null;
  trainer.send({ type: 'use_mnist', url: MNIST_URL, train_images: sample('train_images'), test_images: sample('test_images') });
}

async function useFiles(entries) {
  const images = entries.filter(({ file }) => !file.name.startsWith('.'));
  if (images.length === 0) {
    showMessage('No files were found in what was dropped.');
    return;
  }
  $('dataset-summary').textContent = `Reading ${images.length} files…`;
  const files = await readLabelledFiles(images);
  trainer.send({ type: 'use_files', files, ...imageShape() }, files.map((f) => f.bytes.buffer));
}

function showDataset(summary) {
  state.dataset = summary;
  state.trained = false;
  const box = $('dataset-summary');
  box.replaceChildren();
  const title = document.createElement('p');
  title.textContent = `${summary.name}: ${summary.train_images} training and ${summary.test_images} test images, ` +
    `${summary.classes.length} classes, ${summary.width}×${summary.height} ${summary.channels === 1 ? 'grey' : 'RGB'}.`;
  box.append(title);
  const classes = document.createElement('div');
  classes.className = 'classes';
  for (const c of summary.classes) {
    const card = document.createElement('figure');
    card.className = 'class-card';
    const thumbs = document.createElement('div');
    for (const t of c.thumbnails) thumbs.append(thumbnailCanvas(t, 40));
    const caption = document.createElement('figcaption');
    caption.textContent = `${c.name} (${c.count})`;
    card.append(thumbs, caption);
    classes.append(card);
  }
  box.append(classes);
  for (const error of summary.file_errors) showMessage(`Skipped ${error}`, 'warning');
  if (summary.problem) showMessage(`This data cannot train yet: ${summary.problem}.`);
  if (document.body.dataset.state !== 'training') setState('idle');
  refreshButtons();
  if (params.get('autostart') === '1' && !summary.problem && !state.autostarted) {
    state.autostarted = true;
    startTraining();
  }
}

// ---- training --------------------------------------------------------------------------

function readSettings() {
  const form = new FormData($('settings'));
  const number = (name) => Number(form.get(name));
  return {
    config: {
      epochs: number('epochs'),
      batch_size: number('batch_size'),
      learning_rate: number('learning_rate'),
      margin: number('margin'),
      validation_split: number('validation_split'),
      seed: number('seed'),
    },
    backend: form.get('backend'),
  };
}

function startTraining() {
  const { config, backend } = readSettings();
  state.training = true;
  state.trained = false;
  state.runStarted = performance.now();
  delete document.body.dataset.error;
  setState('training');
  $('result-details').hidden = true;
  $('progress').value = 0;
  $('progress-text').textContent = 'Starting…';
  lossChart.reset(config.epochs);
  trainer.send({ type: 'train', config, backend });
  refreshButtons();
}

function showProgress(p) {
  const done = (p.epoch - 1 + p.step / p.steps_per_epoch) / p.epochs;
  $('progress').value = done;
  const remaining = p.elapsed_s * (1 / Math.max(done, 1e-9) - 1);
  $('progress-text').textContent = `Epoch ${p.epoch}/${p.epochs} · step ${p.step}/${p.steps_per_epoch} · ` +
    `loss ${p.loss.toFixed(4)} · ${p.pairs_per_s.toFixed(0)} pairs/s · ETA ${formatSeconds(remaining)}`;
  lossChart.addBatch(p);
}

function formatSeconds(seconds) {
  const s = Math.max(0, Math.round(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

const percent = (x) => `${(100 * x).toFixed(2)} %`;

function showResults({ result, evaluation, gallery, stopped, note }) {
  state.training = false;
  state.trained = true;
  $('progress').value = stopped ? $('progress').value : 1;
  $('progress-text').textContent = `${stopped ? 'Stopped' : 'Finished'} after ${result.epochs} epoch(s) in ` +
    `${result.train_s.toFixed(1)} s on ${result.backend === 'webgpu' ? 'WebGPU' : 'the CPU'} ` +
    `(${result.pairs_per_s.toFixed(0)} pairs/s).`;
  $('metrics').innerHTML = `
    <table>
      <tr><th>Test pair accuracy, dissimilar if D &gt; 0.5 (the article's rule)</th><td>${percent(result.test_acc)}</td></tr>
      <tr><th>Best threshold (chosen on validation pairs)</th><td>${result.best_threshold.toFixed(3)}</td></tr>
      <tr><th>Test pair accuracy at the best threshold</th><td>${percent(result.test_acc_best)}</td></tr>
      <tr><th>ROC AUC</th><td>${result.auc.toFixed(4)}</td></tr>
    </table>`;
  if (note) showMessage(note, 'warning');
  state.histogram = histogramChart($('histogram-chart'), evaluation, result.best_threshold, state.histogram);
  state.roc = rocChart($('roc-chart'), evaluation.roc, result.auc, state.roc);
  showGallery(gallery);
  $('result-json').textContent = JSON.stringify(result);
  $('result-details').hidden = false;
  setState('done');
  refreshButtons();
}

function pairCard(left, right, caption, right_or_wrong) {
  const card = document.createElement('figure');
  card.className = `pair ${right_or_wrong ? 'right' : 'wrong'}`;
  const images = document.createElement('div');
  images.append(thumbnailCanvas(left), thumbnailCanvas(right));
  const text = document.createElement('figcaption');
  text.textContent = caption;
  card.append(images, text);
  return card;
}

function showGallery(gallery) {
  $('gallery').replaceChildren(...gallery.map((p) => pairCard(
    p.left, p.right,
    `D = ${p.distance.toFixed(3)} · ${p.predicted_dissimilar ? 'dissimilar' : 'similar'} ` +
      `${p.predicted_dissimilar === p.dissimilar ? '✓' : `✗ (truly ${p.dissimilar ? 'dissimilar' : 'similar'})`}`,
    p.predicted_dissimilar === p.dissimilar,
  )));
}

// ---- compare ---------------------------------------------------------------------------

async function compareFiles() {
  const [left, right] = [$('compare-left').files[0], $('compare-right').files[0]];
  if (!left || !right) {
    showMessage('Pick two image files to compare.');
    return;
  }
  const ref = async (file) => ({ kind: 'file', file_name: file.name, bytes: new Uint8Array(await file.arrayBuffer()) });
  trainer.send({ type: 'compare', left: await ref(left), right: await ref(right) });
}

function compareRandom() {
  const pick = () => ({ kind: 'test', index: Math.floor(Math.random() * state.dataset.test_images) });
  trainer.send({ type: 'compare', left: pick(), right: pick() });
}

function showComparison({ distance, threshold, dissimilar, left, right }) {
  $('compare-result').replaceChildren(pairCard(left, right,
    `D = ${distance.toFixed(3)}: ${dissimilar ? 'dissimilar' : 'similar'} (threshold ${threshold.toFixed(3)})`, true));
}

// ---- wiring ----------------------------------------------------------------------------

async function describeWebGpu() {
  const adapter = await navigator.gpu?.requestAdapter().catch(() => null);
  $('backend-status').textContent = adapter
    ? 'WebGPU is available: training will run on the GPU (choose CPU in the settings to compare).'
    : 'WebGPU is not available in this browser: training will run on the CPU.';
}

function applyDeepLink() {
  for (const name of ['epochs', 'seed', 'batch_size', 'learning_rate', 'margin', 'validation_split']) {
    const value = params.get(name === 'batch_size' ? 'batch' : name) ?? params.get(name);
    if (value !== null) $('settings').elements[name].value = value;
  }
  const backend = params.get('backend');
  if (backend) $('settings').elements.backend.value = backend;
  if (params.get('dataset') === 'mnist') useMnist();
}

$('use-mnist').addEventListener('click', useMnist);
$('train').addEventListener('click', startTraining);
$('stop').addEventListener('click', () => trainer.send({ type: 'stop' }));
$('compare').addEventListener('click', compareFiles);
$('compare-random').addEventListener('click', compareRandom);
$('pick-folder').addEventListener('change', (e) => useFiles([...e.target.files].map((file) => ({ file, path: file.webkitRelativePath }))));
$('pick-files').addEventListener('change', (e) => useFiles([...e.target.files].map((file) => ({ file, path: '' }))));
const drop = $('drop-zone');
drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', async (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  useFiles(await droppedFiles(e.dataTransfer));
});

describeWebGpu();
applyDeepLink();
refreshButtons();
