// The full page: data, settings, training with live progress, results, comparison.
// All computation happens in the worker (src/web/worker.rs); this file only shows it.
import {
  TrainerWorker, MNIST_URL, droppedFiles, thumbnailCanvas, describeWebGpu,
  formatSeconds, percent, runProgress,
} from './trainer.js';
import { LossChart, histogramChart, rocChart, embeddingMap } from './charts.js';
import { listModels, keepModel, forgetModel } from './model-store.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

const state = {
  dataset: null, training: false, trained: false, runStarted: 0, histogram: null, roc: null, map: null,
  // The current model: `kept` once it is in IndexedDB; `download` when the user asked for its file.
  model: null, analysed: false, download: false,
};
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
  $('compare').disabled = state.training || !state.model;
  $('compare-random').disabled = state.training || !state.model || !state.dataset;
  $('neighbour-random').disabled = !state.analysed;
  $('download-model').disabled = !state.model;
  $('load-model').disabled = state.training;
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
      $('backend-status').textContent = describeWebGpu(message.webgpu);
      if (document.body.dataset.state === 'loading') setState('idle');
      refreshButtons();
      restoreLastModel();
      break;
    case 'files_read':
      $('dataset-summary').textContent = `Reading files: ${message.done} of ${message.total}…`;
      break;
    case 'dataset_loaded':
      showDataset(message);
      break;
    case 'backend':
      state.runBackend = message.backend;
      $('backend-status').textContent = `Training on ${message.backend === 'webgpu' ? 'WebGPU' : 'the CPU'}: ${message.reason}.`;
      break;
    case 'progress':
      showProgress(message);
      break;
    case 'epoch':
      lossChart.addEpoch(message);
      showEpoch(message);
      break;
    case 'done':
      showResults(message);
      break;
    case 'compared':
      showComparison(message);
      break;
    case 'analysis':
      showAnalysis(message);
      break;
    case 'neighbours':
      showNeighbours(message);
      break;
    case 'model_file':
      onModelFile(message);
      break;
    case 'model_loaded':
      onModelLoaded(message);
      break;
    case 'error':
      onError(message);
      break;
  }
}

function onError({ message, fatal }) {
  showMessage(message);
  const wasTraining = state.training;
  if (state.training || fatal) {
    state.training = false;
    document.body.dataset.error = message;
    setState('error');
  }
  if (fatal && !trainer.ready) {
    // It never started (the wasm could not load): starting it again would fail the same way.
    $('backend-status').textContent = 'The trainer could not start.';
  } else if (fatal) {
    restartWorker(wasTraining && state.runBackend === 'webgpu');
  }
  refreshButtons();
}

/** After a panic the worker's wasm cannot go on: a fresh worker gets the same data again and the
 * newest kept model (on `ready`). A failure while training on WebGPU (the device lost, say) moves
 * training to the CPU backend. */
function restartWorker(webgpuFailed) {
  state.dataset = null;
  state.trained = false;
  state.model = null;
  state.analysed = false;
  trainer.restart();
  if (webgpuFailed) {
    $('settings').elements.backend.value = 'cpu';
    showMessage('WebGPU failed during training, so the trainer restarted on the CPU backend: ' +
      'your data is loaded again and the last kept model restored; press Train to train on the CPU.', 'warning');
  }
  if (state.source?.mnist) useMnist();
  else if (state.source?.files) useFiles(state.source.files);
  else $('dataset-summary').textContent = 'The worker restarted: choose the data again.';
}

// ---- data ------------------------------------------------------------------------------

function imageShape() {
  const [channels, height, width] = $('image-size').value.split(',').map(Number);
  return { channels, height, width };
}

function useMnist() {
  state.source = { mnist: true };
  $('image-size').value = '1,28,28';
  $('dataset-summary').textContent = 'Loading the MNIST digits…';
  const sample = (name) => Number(params.get(name)) || null;
  trainer.send({ type: 'use_mnist', url: MNIST_URL, train_images: sample('train_images'), test_images: sample('test_images') });
}

async function useFiles(entries) {
  const images = entries.filter(({ file }) => !file.name.startsWith('.'));
  if (state.training) {
    showMessage('Training is running: stop it before loading other data.');
    return;
  }
  if (images.length === 0) {
    showMessage('No files were found in what was dropped.');
    return;
  }
  $('dataset-summary').textContent = `Reading ${images.length} files…`;
  state.source = { files: images };
  if (!(await trainer.sendFiles(images, imageShape()))) {
    $('dataset-summary').textContent = 'Loading the files stopped before the end: drop them again.';
  }
}

function showDataset(summary) {
  state.dataset = summary;
  state.trained = false;
  state.analysed = false;
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
  for (const note of summary.file_notes) showMessage(note, 'warning');
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
  $('epoch-status').textContent = '';
  delete $('epoch-status').dataset.memory;
  lossChart.reset(config.epochs);
  trainer.send({ type: 'train', config, backend });
  refreshButtons();
}

function showProgress(p) {
  const { done, remaining_s } = runProgress(p);
  $('progress').value = done;
  $('progress-text').textContent = `Epoch ${p.epoch}/${p.epochs} · step ${p.step}/${p.steps_per_epoch} · ` +
    `loss ${p.loss.toFixed(4)} · ${p.pairs_per_s.toFixed(0)} pairs/s · ETA ${formatSeconds(remaining_s)}`;
  lossChart.addBatch(p);
}

/** The epoch's figures, and the worker's memory, which must not grow from epoch to epoch. */
function showEpoch({ epoch, train_loss, validation_loss, validation_acc, memory_bytes }) {
  const validation = validation_loss == null ? '' :
    `, validation loss ${validation_loss.toFixed(4)}, validation pair accuracy ${percent(validation_acc)}`;
  const status = $('epoch-status');
  status.textContent = `Epoch ${epoch}: train loss ${train_loss.toFixed(4)}${validation}; ` +
    `worker memory ${(memory_bytes / 2 ** 20).toFixed(0)} MB.`;
  status.dataset.memory = JSON.stringify([...JSON.parse(status.dataset.memory ?? '[]'), memory_bytes]);
}

function showResults({ result, evaluation, gallery, stopped, interrupted, note }) {
  state.training = false;
  state.trained = true;
  state.model = { kept: false };
  state.analysed = false;
  $('analysis').textContent = 'Classifying the test images with the new embeddings…';
  trainer.send({ type: 'save_model' }); // kept in this browser as soon as it arrives
  if (interrupted) showMessage(interrupted, 'warning');
  $('progress').value = stopped || interrupted ? $('progress').value : 1;
  $('progress-text').textContent = `${stopped || interrupted ? 'Stopped' : 'Finished'} after ${result.epochs} epoch(s) in ` +
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

const randomTestImage = () => ({ kind: 'test', index: Math.floor(Math.random() * state.dataset.test_images) });

function compareRandom() {
  trainer.send({ type: 'compare', left: randomTestImage(), right: randomTestImage() });
}

function showComparison({ distance, threshold, dissimilar, left, right }) {
  $('compare-result').replaceChildren(pairCard(left, right,
    `D = ${distance.toFixed(3)}: ${dissimilar ? 'dissimilar' : 'similar'} (threshold ${threshold.toFixed(3)})`, true));
}

// ---- use the model: classification, the embedding map, neighbours ---------------------

function showAnalysis(report) {
  state.analysed = true;
  const table = document.createElement('table');
  const rows = [
    [`Test pair accuracy at the model's threshold ${report.threshold.toFixed(3)}`, percent(report.pair_acc)],
    [`k-NN classification (k = ${report.knn_k}, over ${report.reference_images} labelled training images)`, percent(report.knn_acc)],
    [`${report.one_shot_ways}-way one-shot classification (one random example per class)`, percent(report.one_shot_acc)],
    ['Chance for one-shot', percent(1 / Math.max(1, report.one_shot_ways))],
  ];
  for (const [label, value] of rows) {
    const row = table.insertRow();
    const th = document.createElement('th');
    th.textContent = label;
    row.append(th);
    row.insertCell().textContent = value;
  }
  const caption = document.createElement('p');
  caption.textContent = `On ${report.test_images} test images.`;
  $('analysis').replaceChildren(table, caption);
  $('analysis').dataset.result = JSON.stringify({
    pair_acc: report.pair_acc, knn_acc: report.knn_acc, one_shot_acc: report.one_shot_acc, one_shot_ways: report.one_shot_ways,
  });
  state.map = embeddingMap($('map-chart'), report, showMapPoint, state.map);
  refreshButtons();
}

function showMapPoint(point, className) {
  const caption = document.createElement('figcaption');
  caption.textContent = className;
  $('map-hover').replaceChildren(thumbnailCanvas(point.thumbnail, 96), caption);
}

async function findNeighbours(file) {
  if (!file) return;
  const bytes = new Uint8Array(await file.arrayBuffer());
  trainer.send({ type: 'neighbours', query: { kind: 'file', file_name: file.name, bytes }, k: 8 }, [bytes.buffer]);
}

function showNeighbours({ query, predicted_class: predicted, neighbours }) {
  const queryCard = document.createElement('figure');
  queryCard.className = 'pair query';
  const caption = document.createElement('figcaption');
  caption.textContent = predicted ? `query: looks like "${predicted}"` : 'query';
  queryCard.append(thumbnailCanvas(query), caption);
  $('neighbours').replaceChildren(queryCard, ...neighbours.map((n) => {
    const card = document.createElement('figure');
    card.className = 'pair neighbour';
    const text = document.createElement('figcaption');
    text.textContent = `${n.class_name} · D = ${n.distance.toFixed(3)}`;
    card.append(thumbnailCanvas(n.thumbnail), text);
    return card;
  }));
}

// ---- keep the model --------------------------------------------------------------------

function describeModel(info) {
  return `trained on ${info.dataset} for ${info.epochs_trained} epoch(s), ${info.shape.width}×${info.shape.height} ` +
    `${info.shape.channels === 1 ? 'grey' : 'RGB'}, ${info.class_names.length} classes, test pair accuracy ${percent(info.test_acc)}`;
}

async function onModelFile({ file_name, bytes, info }) {
  if (state.download) {
    state.download = false;
    const link = document.createElement('a');
    link.href = URL.createObjectURL(new Blob([bytes], { type: 'application/octet-stream' }));
    link.download = file_name;
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
  }
  if (state.model && !state.model.kept) {
    state.model.kept = true;
    try {
      await keepModel({ file_name, info, bytes });
    } catch (error) {
      showMessage(`The model could not be kept in this browser (${error.message}); download it to keep it.`, 'warning');
    }
    showSavedModels();
  }
  $('model-status').textContent = `Current model: ${describeModel(info)}.`;
}

function onModelLoaded({ file_name, info }) {
  state.model = { kept: true };
  state.analysed = false;
  $('model-status').textContent = `Loaded ${file_name}: ${describeModel(info)}.`;
  $('model-status').dataset.loaded = file_name;
  if (!state.dataset) {
    $('analysis').textContent = `Load data of ${info.shape.width}×${info.shape.height} images to classify with this model.`;
  }
  refreshButtons();
}

async function loadModelFile(file) {
  if (!file) return;
  const bytes = new Uint8Array(await file.arrayBuffer());
  trainer.send({ type: 'load_model', file_name: file.name, bytes }, [bytes.buffer]);
}

async function showSavedModels() {
  let models = [];
  try {
    models = await listModels();
  } catch (error) {
    $('saved-models').replaceChildren(Object.assign(document.createElement('li'), { textContent: `This browser keeps no models here (${error.message}).` }));
    return [];
  }
  $('saved-models').replaceChildren(...models.map((model) => {
    const item = document.createElement('li');
    const text = document.createElement('span');
    text.textContent = `${model.file_name} · ${new Date(model.saved_at).toLocaleString()} · ${describeModel(model.info)} `;
    const load = Object.assign(document.createElement('button'), { type: 'button', textContent: 'Load', className: 'small' });
    load.addEventListener('click', () => trainer.send({ type: 'load_model', file_name: model.file_name, bytes: model.bytes }));
    const forget = Object.assign(document.createElement('button'), { type: 'button', textContent: 'Forget', className: 'small secondary' });
    forget.addEventListener('click', async () => {
      await forgetModel(model.id);
      showSavedModels();
    });
    item.append(text, load, forget);
    return item;
  }));
  return models;
}

/**
 * A reload loses nothing: the newest kept model becomes the current one again, unless the data
 * loaded or loading (a deep link to the digits, say) has another image size, which it cannot
 * serve; it stays under the kept models then.
 */
async function restoreLastModel() {
  const [newest] = await showSavedModels();
  const loading = state.source ? imageShape() : null;
  const fits = (shape) => !loading || ['channels', 'height', 'width'].every((key) => shape[key] === loading[key]);
  if (newest && fits(newest.info.shape) && !state.model && !state.training) {
    trainer.send({ type: 'load_model', file_name: newest.file_name, bytes: newest.bytes });
  }
}

// ---- wiring ----------------------------------------------------------------------------

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
$('neighbour-random').addEventListener('click', () => trainer.send({ type: 'neighbours', query: randomTestImage(), k: 8 }));
$('neighbour-file').addEventListener('change', (e) => findNeighbours(e.target.files[0]));
const neighbourZone = $('neighbour-zone');
neighbourZone.addEventListener('dragover', (e) => { e.preventDefault(); neighbourZone.classList.add('over'); });
neighbourZone.addEventListener('dragleave', () => neighbourZone.classList.remove('over'));
neighbourZone.addEventListener('drop', (e) => {
  e.preventDefault();
  neighbourZone.classList.remove('over');
  findNeighbours(e.dataTransfer.files[0]);
});
$('download-model').addEventListener('click', () => {
  state.download = true;
  trainer.send({ type: 'save_model' });
});
$('load-model').addEventListener('change', (e) => {
  loadModelFile(e.target.files[0]);
  e.target.value = '';
});
// Each input is emptied once read, so picking the same files again (after a refusal) is seen.
for (const [id, pathOf] of [['pick-folder', (file) => file.webkitRelativePath], ['pick-files', () => '']]) {
  $(id).addEventListener('change', (e) => {
    const entries = [...e.target.files].map((file) => ({ file, path: pathOf(file) }));
    e.target.value = '';
    useFiles(entries);
  });
}
const drop = $('drop-zone');
drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', async (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  useFiles(await droppedFiles(e.dataTransfer));
});

applyDeepLink();
refreshButtons();
