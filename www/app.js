// The full page: data, settings, training with live progress, results, comparison.
// All computation happens in the worker's session (src/session/); the controller (controller.js,
// shared with the widget) runs the worker; this file only shows what they report.
import {
  droppedFiles, thumbnailCanvas, describeWebGpu, formatSeconds, percent, runProgress, progressValueText, DEFAULT_WORKERS, seenImagesNote,
} from './trainer.js';
import { TrainingController } from './controller.js';
import { LossChart, histogramChart, rocChart, embeddingMap, detChart } from './charts.js';
import { listModels, keepModel as storeModel, forgetModel } from './model-store.js';
import { ClassCollection } from './classes.js';
import { Camera } from './camera.js';
import {
  keptImage, encodeProject, decodeProject, keepProject, keptProject, storageReport, MAX_KEPT_IMAGES, PROJECT_EXTENSION,
} from './project.js';

/** @typedef {import('./messages').Message} Message */
/** @typedef {import('./messages').ModelInfo} ModelInfo */

/** The page's elements by id; each is used as what it is (an input, a canvas...). @type {(id: string) => any} */
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

const state = {
  dataset: null, trained: false, histogram: null, roc: null, map: null, det: null,
  // The last analysis (its map and frames) and the frames' common axes.
  mapReport: null, mapBounds: null,
  // The last "none of the above" report: the slider previews its curve.
  openSet: null,
  // The current model, once trained or loaded.
  model: null, analysed: false, settingsFilled: false,
  // The kept (IndexedDB) entry of the model trained here, updated when it changes.
  keptId: null, loadingKeptId: null,
  // The user's own images (picked, dropped, recorded), and whether they are the session's data.
  samples: new ClassCollection(), ownData: false,
  // Images the session decoded per class, for the last collection it was sent.
  decoded: null,
  // The data changed after the current model was trained.
  outOfDate: false,
  // The settings of the kept or loaded project, for a form not filled yet.
  projectSettings: null,
  // The settings of the run in progress, and of the last run that ended well (the project keeps
  // those, not every edit: settings the session refused or that made a run diverge stay out).
  runSettings: null, keptSettings: null,
};
const camera = new Camera($('camera-video'));
const lossChart = new LossChart($('loss-chart'));
// A deep link to WebGPU starts with the full module; elsewhere the worker picks (worker.js).
const controller = new TrainingController({
  state: (name) => {
    document.body.dataset.state = name;
    refreshButtons();
  },
  reply: onWorkerMessage,
  restarted: onRestarted,
  unavailable: (message) => {
    showMessage(message);
    document.body.dataset.error = message;
    $('backend-status').textContent = 'The trainer could not start.';
  },
}, { webgpuModule: params.get('backend') === 'webgpu' });

function refreshButtons() {
  const training = controller.training;
  const usable = state.dataset && !state.dataset.problem;
  $('train').disabled = training || !usable;
  $('stop').disabled = !training;
  $('use-mnist').disabled = training;
  $('compare').disabled = training || !state.model;
  $('compare-random').disabled = training || !state.model || !state.dataset;
  $('neighbour-random').disabled = !state.analysed;
  $('unknown-distance').disabled = training || !state.openSet;
  $('enrol').disabled = training || !state.analysed;
  // Held-out classes play the unknowns until every one is enrolled.
  $('enrol-held-out').disabled = training || state.openSet?.unknowns.kind !== 'held_out';
  $('download-model').disabled = !state.model;
  $('export-projector').disabled = training || !state.analysed;
  $('download-split').disabled = training || !state.dataset || Boolean(state.dataset.problem);
  $('load-model').disabled = training;
  $('camera-record').disabled = training || !camera.on;
  for (const button of /** @type {NodeListOf<HTMLButtonElement>} */ (document.querySelectorAll('#own-classes button'))) {
    button.disabled = training;
  }
  $('use-own-images').hidden = state.ownData || state.samples.size === 0;
  $('data-changed').hidden = !(state.model && state.outOfDate);
  $('download-project').disabled = training || (state.samples.size === 0 && !state.model);
  $('load-project').disabled = training;
}

function showMessage(text, kind = 'error') {
  const item = document.createElement('p');
  item.className = kind;
  item.textContent = text;
  $('messages').prepend(item);
}

// ---- worker messages -------------------------------------------------------------------

/** @param {Message} message */
function onWorkerMessage(message) {
  switch (message.type) {
    case 'ready':
      $('backend-status').textContent = describeWebGpu(message.webgpu);
      // After the status: a kept choice of WebGPU may replace the module, and says so there.
      fillSettings(message.defaults);
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
    case 'open_set':
      showOpenSet(message);
      keepModel({ changed: true });
      break;
    case 'neighbours':
      showNeighbours(message);
      break;
    case 'model_loaded':
      onModelLoaded(message);
      break;
    case 'error':
      onError(message);
      break;
  }
}

/** @param {Extract<Message, { type: 'error' }>} error */
function onError({ message }) {
  showMessage(message);
  if (controller.state === 'error') document.body.dataset.error = message;
  refreshButtons();
}

/** A fresh worker replaced one that failed: the controller loads the same data again, and the
 * newest kept model comes back on `ready`. */
function onRestarted({ webgpuFailed, webgpuModule }) {
  state.dataset = null;
  state.trained = false;
  state.model = null;
  state.analysed = false;
  if (webgpuFailed) {
    $('settings').elements.backend.value = 'cpu';
    showMessage('WebGPU failed during training, so the trainer restarted on the CPU backend: ' +
      'your data is loaded again and the last kept model restored; press Train to train on the CPU.', 'warning');
  }
  if (webgpuModule) $('backend-status').textContent = 'Loading the WebGPU module…';
  if (!controller.source) $('dataset-summary').textContent = 'The worker restarted: choose the data again.';
  refreshButtons();
}

// ---- data ------------------------------------------------------------------------------

function imageShape() {
  const [channels, height, width] = $('image-size').value.split(',').map(Number);
  return { channels, height, width };
}

/** Loads of the user's images sent: a newer one, or the digits, ends the one before. */
let ownLoads = 0;

function useMnist() {
  state.ownData = false;
  keepProjectSoon();
  ownLoads += 1; // a load of the user's images in flight ends here, and that is no failure
  $('image-size').value = '1,28,28';
  $('dataset-summary').textContent = 'Loading the MNIST digits…';
  const sample = (name) => Number(params.get(name)) || null;
  controller.useMnist({ train_images: sample('train_images'), test_images: sample('test_images') });
}

/** Dropped or picked files are the new data, beside the classes recorded from the camera. */
function useFiles(entries) {
  const images = entries.filter(({ file }) => !file.name.startsWith('.'));
  if (controller.training) {
    showMessage('Training is running: stop it before loading other data.');
    return;
  }
  if (images.length === 0) {
    showMessage('No files were found in what was dropped.');
    return;
  }
  state.samples.replaceFiles(images);
  ownImagesChanged();
}

/** After any change to the user's classes: they are shown, and sent as the data. */
function ownImagesChanged() {
  if (state.model) state.outOfDate = true;
  state.decoded = null;
  showOwnClasses();
  sendOwnImages();
  keepProjectSoon();
}

async function sendOwnImages() {
  const load = ++ownLoads;
  const entries = state.samples.entries();
  state.ownData = true;
  refreshButtons();
  if (entries.length === 0) {
    state.dataset = null;
    $('dataset-summary').textContent = 'No images: drop, pick or record some.';
    refreshButtons();
    return;
  }
  $('dataset-summary').textContent = `Reading ${entries.length} files…`;
  // A newer change ends this load; only a load that stopped on its own is reported.
  if (!(await controller.useFiles(entries, imageShape())) && load === ownLoads) {
    $('dataset-summary').textContent = 'Loading the files stopped before the end: drop them again.';
  }
}

/** The user's classes as cards to rename, delete and prune (the first images of each shown). */
const SHOWN_PER_CLASS = 24;
let shownUrls = [];

function showOwnClasses() {
  for (const url of shownUrls) URL.revokeObjectURL(url);
  shownUrls = [];
  $('own-classes').hidden = state.samples.size === 0;
  $('own-class-cards').replaceChildren(...[...state.samples.classes].map(([name, files]) => {
    const card = document.createElement('figure');
    card.className = 'class-card own-class';
    card.dataset.name = name;
    const thumbs = document.createElement('div');
    for (const file of files.slice(0, SHOWN_PER_CLASS)) {
      const sample = document.createElement('span');
      sample.className = 'sample';
      const image = document.createElement('img');
      image.src = URL.createObjectURL(file);
      image.alt = file.name;
      image.addEventListener('error', () => { image.title = `${file.name}: not an image this browser can show`; });
      shownUrls.push(image.src);
      const remove = Object.assign(document.createElement('button'), { type: 'button', className: 'remove', textContent: '×' });
      remove.setAttribute('aria-label', `Remove ${file.name} from ${name}`);
      remove.addEventListener('click', () => editOwnClasses(() => state.samples.remove(name, file)));
      sample.append(image, remove);
      thumbs.append(sample);
    }
    if (files.length > SHOWN_PER_CLASS) {
      thumbs.append(Object.assign(document.createElement('span'), { className: 'more', textContent: `+${files.length - SHOWN_PER_CLASS} more` }));
    }
    // The images the session could use, once it answered (unusable files are named in messages).
    const usable = state.decoded ? state.decoded.get(name) ?? 0 : files.length;
    card.classList.toggle('unusable', usable === 0);
    const caption = document.createElement('figcaption');
    caption.textContent = `${name} (${usable})`;
    if (usable === 0) caption.title = 'None of its files could be read: the messages say why.';
    const actions = document.createElement('div');
    const add = document.createElement('label');
    add.className = 'button small secondary';
    add.textContent = 'Add images…';
    const picker = Object.assign(document.createElement('input'), { type: 'file', accept: 'image/*', multiple: true, hidden: true });
    picker.setAttribute('aria-label', `Add images to ${name}`);
    picker.addEventListener('change', () => editOwnClasses(() => { for (const file of picker.files) state.samples.add(name, file); }));
    add.append(picker);
    const rename = Object.assign(document.createElement('button'), { type: 'button', className: 'small secondary rename', textContent: 'Rename' });
    rename.addEventListener('click', () => askNewName(card, name));
    const remove = Object.assign(document.createElement('button'), { type: 'button', className: 'small secondary delete', textContent: 'Delete' });
    remove.setAttribute('aria-label', `Delete the class ${name} and its ${files.length} images`);
    remove.addEventListener('click', () => editOwnClasses(() => state.samples.delete(name)));
    actions.append(add, rename, remove);
    card.append(thumbs, caption, actions);
    return card;
  }));
  refreshButtons();
}

/** An edit of the user's classes, refused while training (the run's data must not move). */
function editOwnClasses(edit) {
  if (controller.training) {
    showMessage('Training is running: stop it before changing the classes.');
    return;
  }
  edit();
  ownImagesChanged();
}

/** A name field in place of the card's caption; Enter renames, Escape leaves it. */
function askNewName(card, name) {
  const form = document.createElement('form');
  const field = Object.assign(document.createElement('input'), { value: name, required: true });
  field.setAttribute('aria-label', `New name for ${name}`);
  const save = Object.assign(document.createElement('button'), { type: 'submit', className: 'small', textContent: 'Save' });
  form.append(field, save);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const to = field.value.trim();
    if (to === name) {
      showOwnClasses();
      return;
    }
    const refused = state.samples.refusal(to, name);
    if (refused) {
      showMessage(`The class was not renamed: ${refused}.`);
      return;
    }
    editOwnClasses(() => state.samples.rename(name, to));
  });
  field.addEventListener('keydown', (e) => { if (e.key === 'Escape') showOwnClasses(); });
  card.querySelector('figcaption').replaceChildren(form);
  field.focus();
  field.select();
}

// ---- the camera ------------------------------------------------------------------------

const CAPTURE_INTERVAL_MS = 150;
let recording = null;

async function startCamera() {
  $('camera-start').disabled = true;
  try {
    await camera.start();
    $('camera-video').hidden = false;
    $('camera-stop').hidden = false;
    $('camera-start').hidden = true;
    $('camera-count').textContent = 'The camera is on: hold the button to record.';
  } catch (error) {
    $('camera-count').textContent = error.message;
    showMessage(error.message);
  } finally {
    $('camera-start').disabled = false;
    refreshButtons();
  }
}

function stopCamera() {
  stopRecording();
  camera.stop();
  $('camera-video').hidden = true;
  $('camera-stop').hidden = true;
  $('camera-start').hidden = false;
  $('camera-count').textContent = '';
  refreshButtons();
}

function startRecording() {
  if (recording || !camera.on || controller.training) return;
  const name = $('camera-class').value.trim();
  const refused = state.samples.refusal(name, name);
  if (refused) {
    showMessage(`Nothing was recorded: ${refused}.`);
    return;
  }
  $('camera-record').setAttribute('aria-pressed', 'true');
  // The count moves with every frame: read out once, when the hold ends.
  $('camera-count').setAttribute('aria-live', 'off');
  const before = state.samples.classes.get(name)?.length ?? 0;
  const captures = [];
  const hold = `${name}/camera hold ${new Date().toISOString()}`;
  const take = () => captures.push(camera.capture().then((blob) => {
    state.samples.addCapture(name, blob, hold);
    $('camera-count').textContent = `${name}: ${state.samples.classes.get(name).length} images`;
  }));
  take();
  recording = { name, before, captures, timer: setInterval(take, CAPTURE_INTERVAL_MS) };
}

/** The hold ended: the frames taken join their class, and the data follows once. */
async function stopRecording() {
  if (!recording) return;
  const { name, before, captures, timer } = recording;
  recording = null;
  clearInterval(timer);
  $('camera-record').setAttribute('aria-pressed', 'false');
  const taken = await Promise.allSettled(captures);
  const count = state.samples.classes.get(name)?.length ?? 0;
  $('camera-count').setAttribute('aria-live', 'polite');
  $('camera-count').textContent = `${name}: ${count} images (${count - before} new)`;
  const failed = taken.find((t) => t.status === 'rejected');
  if (failed) showMessage(`Some frames were not kept: ${/** @type {PromiseRejectedResult} */ (failed).reason.message}.`, 'warning');
  ownImagesChanged();
}

/** @param {Extract<Message, { type: 'dataset_loaded' }>} summary */
function showDataset(summary) {
  state.dataset = summary;
  // An older load of the user's images that ended after they changed again: the newer one follows.
  if (state.ownData && summary.id !== controller.trainer.lastFilesEnd) return;
  state.trained = false;
  state.analysed = false;
  const box = $('dataset-summary');
  box.replaceChildren();
  const title = document.createElement('p');
  title.textContent = `${summary.name}: ${summary.train_images} training and ${summary.test_images} test images, ` +
    `${summary.classes.length} classes, ${summary.width}×${summary.height} ${summary.channels === 1 ? 'grey' : 'RGB'}.`;
  box.append(title);
  if (summary.train_groups + summary.test_groups > 0) {
    const hint = document.createElement('p');
    hint.className = 'hint groups';
    hint.textContent = `Groups kept on one side of the split: ${summary.train_groups} in training, ` +
      `${summary.test_groups} in the test part. A group (the frames of one camera hold, the files of an @folder, ` +
      'the copies of one image) stays whole, so no test image has a twin in training.';
    box.append(hint);
  }
  // Keys of images learnt with the load: the kept project holds them from now on.
  if (state.ownData && controller.trainer.takeLearntKeys()) keepProjectSoon({ quietly: true });
  // The user's own classes have their editable cards below; the digits get the session's.
  if (state.ownData) {
    // A load answered during a camera hold counts the data before it: a class begun by the hold
    // would show as unusable until the load that follows the hold answers.
    state.decoded = recording ? null : new Map(summary.classes.map((c) => [c.name, c.count]));
    showOwnClasses();
  }
  const classes = document.createElement('div');
  classes.className = 'classes';
  for (const c of state.ownData ? [] : summary.classes) {
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
  for (const duplicate of summary.duplicates) showMessage(duplicate, 'warning');
  if (summary.problem) showMessage(`This data cannot train yet: ${summary.problem}.`);
  refreshButtons();
  if (params.get('autostart') === '1' && !summary.problem && !state.autostarted) {
    state.autostarted = true;
    startTraining();
  }
}

// ---- training --------------------------------------------------------------------------

function startTraining() {
  // Sent as typed: the session reads and checks every setting, and names one it refuses.
  const settings = settingsFields();
  // WebGPU chosen during a run, where the CPU-only module runs: the full one comes first.
  if (settings.backend === 'webgpu' && controller.useWebGpuModule()) {
    showMessage('WebGPU needs the full module: it is loading with your data; press Train again when it is ready.', 'warning');
    return;
  }
  state.runSettings = settingsFields();
  state.trained = false;
  delete document.body.dataset.error;
  $('result-details').hidden = true;
  $('progress').value = 0;
  $('progress').setAttribute('aria-valuetext', 'Starting');
  $('progress-text').textContent = 'Starting…';
  $('progress-announce').textContent = `Training started: ${settings.epochs} epoch(s).`;
  $('epoch-status').textContent = '';
  delete $('epoch-status').dataset.memory;
  lossChart.reset(Number(settings.epochs) || 1);
  controller.train(settings);
}

/** @param {import('./messages').BatchProgress} p */
function showProgress(p) {
  const { done, remaining_s } = runProgress(p);
  $('progress').value = done;
  $('progress').setAttribute('aria-valuetext', progressValueText(p));
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
  $('progress-announce').textContent = `Epoch ${epoch} done${validation_acc == null ? '' : `: validation pair accuracy ${percent(validation_acc)}`}.`;
  status.dataset.memory = JSON.stringify([...JSON.parse(status.dataset.memory ?? '[]'), memory_bytes]);
}

/** A figure, or a dash where it could not be measured (the run's note says why). */
const figure = (value, format = percent) => (value == null ? '—' : format(value));

const THRESHOLD_SOURCE = {
  validation: 'chosen on the validation pairs',
  training: 'chosen on training pairs: there are no validation pairs',
};

/** @param {import('./messages').RunReport} report */
function showResults({ result, evaluation, gallery, stopped, interrupted, note }) {
  state.trained = true;
  state.model = {};
  state.outOfDate = false;
  if (!interrupted && state.runSettings) {
    state.keptSettings = state.runSettings;
    keepProjectSoon();
  }
  state.keptId = null;
  state.analysed = false;
  state.openSet = null;
  $('analysis').textContent = 'Classifying the test images with the new embeddings…';
  keepModel(); // in this browser, as soon as its file arrives
  if (interrupted) showMessage(interrupted, 'warning');
  $('progress').value = stopped || interrupted ? $('progress').value : 1;
  $('progress-text').textContent = `${stopped || interrupted ? 'Stopped' : 'Finished'} after ${result.epochs} epoch(s) in ` +
    `${result.train_s.toFixed(1)} s on ${result.backend === 'webgpu' ? 'WebGPU' : 'the CPU'} ` +
    `(${result.pairs_per_s.toFixed(0)} pairs/s${result.workers > 1 ?
      `, ${result.workers} workers: ${(result.pairs_per_s / result.workers).toFixed(0)} per worker` : ''}).`;
  $('progress').setAttribute('aria-valuetext', $('progress-text').textContent);
  $('progress-announce').textContent = `${$('progress-text').textContent} Test pair accuracy ${figure(result.test_acc)}.`;
  $('metrics').innerHTML = `
    <table>
      <tr><th>Test pair accuracy, dissimilar if D &gt; 0.5 (the article's rule)</th><td>${figure(result.test_acc)}</td></tr>
      <tr><th>Best threshold (${THRESHOLD_SOURCE[result.threshold_source]})</th><td>${result.best_threshold.toFixed(3)}</td></tr>
      <tr><th>Test pair accuracy at the best threshold</th><td>${figure(result.test_acc_best)}</td></tr>
      <tr><th>ROC AUC</th><td>${figure(result.auc, (auc) => auc.toFixed(4))}</td></tr>
    </table>
    <p class="hint">On ${result.test_pairs} test pairs (${result.test_pairs_similar} of one class, the rest of two) ` +
    'of images held out of training.</p>';
  if (note) showMessage(note, 'warning');
  if (evaluation) {
    state.histogram = histogramChart($('histogram-chart'), evaluation, result.best_threshold, state.histogram);
    state.roc = rocChart($('roc-chart'), evaluation.roc, result.auc, state.roc);
  }
  showGallery(gallery);
  $('result-json').textContent = JSON.stringify(result);
  $('result-details').hidden = false;
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

/** @param {import('./messages').GalleryPair[]} gallery */
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
  controller.send({ type: 'compare', left: await ref(left), right: await ref(right) });
}

const randomTestImage = () => ({ kind: 'test', index: Math.floor(Math.random() * state.dataset.test_images) });

function compareRandom() {
  controller.send({ type: 'compare', left: randomTestImage(), right: randomTestImage() });
}

/** @param {Extract<Message, { type: 'compared' }>} comparison */
function showComparison({ distance, threshold, dissimilar, left, right, left_recognised, right_recognised, left_seen, right_seen }) {
  const card = pairCard(left, right,
    `D = ${distance.toFixed(3)}: ${dissimilar ? 'dissimilar' : 'similar'} (threshold ${threshold.toFixed(3)})`, true);
  const recognised = document.createElement('p');
  recognised.className = 'hint recognised';
  recognised.textContent = left_recognised && right_recognised
    ? `First: ${describeRecognition(left_recognised)}. Second: ${describeRecognition(right_recognised)}.`
    : 'Load data of the model\'s image size to recognise the images as its classes.';
  const seen = [left_seen && 'the first', right_seen && 'the second'].filter(Boolean);
  if (seen.length) recognised.textContent += ` The model trained on ${seen.join(' and ')} image.`;
  $('compare-result').replaceChildren(card, recognised);
}

/** @param {import('./messages').Recognition} r */
function describeRecognition(r) {
  return r.class_name != null
    ? `"${r.class_name}" (${r.distance.toFixed(3)} from it)`
    : `none of the above (nearest "${r.nearest_class}" is ${r.distance.toFixed(3)} away, past ${r.unknown_distance.toFixed(3)})`;
}

// ---- use the model: classification, the embedding map, neighbours ---------------------

/** A table of [label, figure] rows. @param {string[][]} rows */
function figureTable(rows) {
  const table = document.createElement('table');
  for (const [label, value] of rows) {
    const row = table.insertRow();
    const th = document.createElement('th');
    th.textContent = label;
    row.append(th);
    row.insertCell().textContent = value;
  }
  return table;
}

/** @param {import('./messages').AnalysisReport} report */
function showAnalysis(report) {
  state.analysed = true;
  const table = figureTable([
    [`Test pair accuracy at the model's threshold ${report.threshold.toFixed(3)} (${report.test_pairs} test pairs)`, figure(report.pair_acc)],
    [`k-NN classification (k = ${report.knn_k}, over ${report.reference_images} labelled training images)`, figure(report.knn_acc)],
    [`${report.one_shot_ways}-way one-shot classification (one random example per class)`, figure(report.one_shot_acc)],
    ['Chance for one-shot', figure(report.one_shot_ways ? 1 / report.one_shot_ways : null)],
  ]);
  const caption = document.createElement('p');
  caption.textContent = report.note ?? `On ${report.test_images} test images${seenImagesNote(report.seen_images_left_out)}.`;
  caption.dataset.seenLeftOut = String(report.seen_images_left_out);
  $('analysis').replaceChildren(table, caption);
  // A model trained on other images than these (the data changed, or a model of other data).
  if (report.training_data_changed != null) state.outOfDate = report.training_data_changed;
  $('analysis').dataset.result = JSON.stringify({
    pair_acc: report.pair_acc, knn_acc: report.knn_acc, one_shot_acc: report.one_shot_acc, one_shot_ways: report.one_shot_ways,
  });
  showMapOverTime(report);
  showHardestPairs(report);
  if (report.open_set) showOpenSet(report.open_set);
  else {
    state.openSet = null;
    $('open-set').textContent = 'No test images to recognise.';
  }
  refreshButtons();
}

/** @param {import('./messages').AnalysisReport} report */
function showHardestPairs({ closest_dissimilar: closest, farthest_similar: farthest }) {
  const card = (p) => pairCard(p.left, p.right,
    `${p.left_class} · ${p.right_class} · D = ${p.distance.toFixed(3)}`, false);
  $('closest-dissimilar').replaceChildren(...closest.map(card));
  $('closest-dissimilar').setAttribute('aria-label', 'Closest pairs of different classes');
  $('farthest-similar').replaceChildren(...farthest.map(card));
  $('farthest-similar').setAttribute('aria-label', 'Farthest pairs of one class');
}

/** @param {import('./messages').OpenSetReport} report */
function showOpenSet(report) {
  state.openSet = report;
  const { unknowns, chosen, equal_error: equal } = report;
  const source = unknowns.kind === 'held_out'
    ? `The unknowns are the ${report.unknown_queries} test images of ${unknowns.classes.join(', ')}, held out of training.`
    : 'No class is unknown, so each test image is also scored as if its own class were missing (its distance to the ' +
      'nearest other class): kinder than truly new things, which only held-out classes measure.';
  const rows = [
    ['Classes recognised', report.classes.join(', ')],
    ['Known test images recognised as their class, at no distance limit', figure(report.closed_set_acc)],
    [`Equal error rate${equal ? ` (at distance ${equal.distance.toFixed(3)})` : ''}`, figure(report.eer)],
  ];
  if (report.enrolled.length) {
    rows.push([`Enrolled: ${report.enrolled.map((c) => `${c.name} (${c.images} images)`).join(', ')}; ` +
      `their ${report.enrolled_queries} test images recognised as their class`, figure(report.enrolled_acc)]);
  }
  const table = figureTable(rows);
  const caption = document.createElement('p');
  caption.textContent = `${source} On ${report.known_queries} test images of known classes.`;
  $('open-set').replaceChildren(table, caption);
  $('open-set').dataset.result = JSON.stringify({
    unknowns: unknowns.kind, classes: report.classes, eer: report.eer, chosen, enrolled_acc: report.enrolled_acc,
  });
  state.det = detChart($('det-chart'), report, state.det);
  const slider = $('unknown-distance');
  // From 0 (its min in the page) to past the farthest point of the curve.
  slider.max = String(Math.max(chosen.distance, ...report.curve.map((p) => p.distance), 0.001));
  slider.value = String(chosen.distance);
  showRates(chosen);
  refreshButtons();
}

/** The rates at one distance, beside the slider. @param {import('./messages').OperatingPoint} p */
function showRates(p) {
  $('unknown-distance-value').textContent = p.distance.toFixed(3);
  const text = `Unknowns accepted ${percent(p.far)} · known images rejected ${percent(p.frr)} · ` +
    `known images recognised as their class ${percent(p.recognised)}`;
  $('unknown-distance-rates').textContent = text;
  $('unknown-distance').setAttribute('aria-valuetext', `distance ${p.distance.toFixed(3)}: ${text}`);
}

/** While the slider moves: the curve's point nearest it, before the session answers. */
function previewUnknownDistance() {
  const distance = Number($('unknown-distance').value);
  const nearest = state.openSet.curve.reduce((best, p) =>
    (Math.abs(p.distance - distance) < Math.abs(best.distance - distance) ? p : best), state.openSet.chosen);
  showRates({ ...nearest, distance });
}

async function enrolFiles() {
  const files = [...$('enrol-files').files];
  const name = $('enrol-name').value.trim();
  if (!name || files.length === 0) {
    showMessage('Give the new class a name and pick 1 to 20 images of it.');
    return;
  }
  const images = await Promise.all(files.map(async (file) =>
    ({ kind: /** @type {const} */ ('file'), file_name: file.name, bytes: new Uint8Array(await file.arrayBuffer()) })));
  controller.send({ type: 'enrol', class_name: name, images });
  $('enrol-files').value = '';
}

/** The map, and the scrubber over its frames when a run just made them (fixed axes over all). */
function showMapOverTime(report) {
  const frames = report.map_over_time;
  state.mapReport = report;
  const slider = $('map-epoch');
  slider.disabled = frames.length === 0;
  if (frames.length === 0) {
    state.mapBounds = null;
    $('map-epoch-value').textContent = 'of the current model';
    state.map = embeddingMap($('map-chart'), report, showMapPoint, state.map);
    return;
  }
  const points = [...frames.flatMap((frame) => frame.points), ...report.map.map((p) => [p.x, p.y])];
  const range = (axis) => {
    const values = points.map((p) => p[axis]);
    const [low, high] = [Math.min(...values), Math.max(...values)];
    const pad = 0.05 * (high - low || 1);
    return [low - pad, high + pad];
  };
  state.mapBounds = { x: range(0), y: range(1) };
  slider.max = String(frames.length - 1);
  slider.value = slider.max;
  showMapFrame();
}

/** The frame the scrubber is at. */
function showMapFrame() {
  const report = state.mapReport;
  const frame = report.map_over_time[Number($('map-epoch').value)];
  $('map-epoch-value').textContent = frame.epoch === 0 ? 'before training' : `after epoch ${frame.epoch}`;
  const map = report.map.map((point, i) => ({ ...point, x: frame.points[i][0], y: frame.points[i][1] }));
  state.map = embeddingMap($('map-chart'), { ...report, map }, showMapPoint, state.map, state.mapBounds);
  $('map-chart').dataset.axes = JSON.stringify(state.mapBounds); // the same for every frame
}

/** The loaded images' embeddings as the Embedding Projector's files, in one zip. */
async function exportProjector() {
  const reply = await controller.request({ type: 'export_projector_archive' });
  if (reply.type !== 'projector_archive') return; // the error is shown by onWorkerMessage
  saveFile(reply.file_name, reply.bytes, 'application/zip');
}

/** The part of every image, as `siamese split` lists it: with the current model's settings (its
 * figures' split), or the form's without a model. */
async function downloadSplit() {
  const reply = await controller.request({ type: 'split_list', settings: state.model ? null : settingsFields() });
  if (reply.type !== 'split_list') return; // the error is shown by onWorkerMessage
  saveFile(reply.file_name, new TextEncoder().encode(reply.tsv), 'text/tab-separated-values');
}

function showMapPoint(point, className) {
  const caption = document.createElement('figcaption');
  caption.textContent = className;
  $('map-hover').replaceChildren(thumbnailCanvas(point.thumbnail, 96), caption);
}

async function findNeighbours(file) {
  if (!file) return;
  const bytes = new Uint8Array(await file.arrayBuffer());
  controller.send({ type: 'neighbours', query: { kind: 'file', file_name: file.name, bytes }, k: 8 }, [bytes.buffer]);
}

/** @param {Extract<Message, { type: 'neighbours' }>} found */
function showNeighbours({ query, predicted_class: predicted, recognised, neighbours }) {
  const queryCard = document.createElement('figure');
  queryCard.className = 'pair query';
  const caption = document.createElement('figcaption');
  caption.textContent = [
    predicted ? `query: looks like "${predicted}" (most of its nearest)` : 'query',
    recognised ? `recognised as ${describeRecognition(recognised)}` : null,
  ].filter(Boolean).join(' · ');
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

/** @param {ModelInfo} info */
function describeModel(info) {
  return `trained on ${info.dataset} for ${info.epochs_trained} epoch(s), ${info.shape.width}×${info.shape.height} ` +
    `${info.shape.channels === 1 ? 'grey' : 'RGB'}, ${info.class_names.length} classes, test pair accuracy ${figure(info.test_acc)}`;
}

/** Keeps the current model in this browser (IndexedDB): a new entry for a model just trained
 * or read from a file, or in place of its entry once it changed (a class enrolled, a new unknown
 * distance). */
async function keepModel({ changed = false } = {}) {
  const replacing = changed ? state.keptId : null;
  const reply = await controller.request({ type: 'save_model' });
  if (reply.type !== 'model_file') return; // the error is shown by onWorkerMessage
  const { file_name, info, bytes } = reply;
  try {
    state.keptId = await storeModel({ file_name, info, bytes }, replacing);
  } catch (error) {
    showMessage(`The model could not be kept in this browser (${error.message}); download it to keep it.`, 'warning');
  }
  showSavedModels();
  $('model-status').textContent = `Current model: ${describeModel(info)}.`;
  $('model-status').dataset.kept = (info.enrolled ?? []).map((c) => c.name).join(',');
}

async function downloadModel() {
  const reply = await controller.request({ type: 'save_model' });
  if (reply.type !== 'model_file') return;
  saveFile(reply.file_name, reply.bytes, 'application/octet-stream');
}

/** Offers `bytes` as a download named `fileName`. */
function saveFile(fileName, bytes, type) {
  const link = document.createElement('a');
  link.href = URL.createObjectURL(new Blob([/** @type {BlobPart} */ (bytes)], { type }));
  link.download = fileName;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}

/** @param {Extract<Message, { type: 'model_loaded' }>} loaded */
function onModelLoaded({ file_name, info }) {
  state.model = {};
  state.outOfDate = false;
  // A model from this browser's list stays that entry; one from a file gets its own once changed.
  state.keptId = state.loadingKeptId;
  state.loadingKeptId = null;
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
  state.loadingKeptId = null;
  controller.send({ type: 'load_model', file_name: file.name, bytes }, [bytes.buffer]);
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
    load.addEventListener('click', () => {
      state.loadingKeptId = model.id;
      controller.send({ type: 'load_model', file_name: model.file_name, bytes: model.bytes });
    });
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
  await projectRestored; // its image size and data decide which model fits
  const [newest] = await showSavedModels();
  const loading = controller.source ? imageShape() : null;
  const fits = (shape) => !loading || ['channels', 'height', 'width'].every((key) => shape[key] === loading[key]);
  if (newest && fits(newest.info.shape) && !state.model && !controller.training) {
    state.loadingKeptId = newest.id;
    controller.send({ type: 'load_model', file_name: newest.file_name, bytes: newest.bytes });
  }
}

// ---- the whole project -----------------------------------------------------------------

/** The settings form's fields by name, as typed. */
function settingsFields() {
  return Object.fromEntries([...new FormData($('settings'))].map(([name, value]) => [name, String(value)]));
}

/** The user's classes with each image as kept (shrunk), saying how far it got for many. */
async function keptClasses() {
  const classes = state.samples.snapshot();
  const total = state.samples.size;
  let done = 0;
  for (const [, files] of classes) {
    for (const entry of files) {
      entry.file = await keptImage(entry.file);
      done += 1;
      if (total > 200 && done % 100 === 0) $('project-status').textContent = `Preparing your images: ${done} of ${total}…`;
    }
  }
  return classes;
}

let keepTimer = null;
/** Whether the keep waiting for its timer only records what the page learnt (the images' keys),
 * which the user need not be told of. */
let keepQuietly = true;
/** The keeps in flight, one after another, so that an older one never lands last. */
let keeping = Promise.resolve();

/** Keeps the classes and settings in this browser a moment after the last change; `quietly`
 * leaves the storage line as it is. */
function keepProjectSoon({ quietly = false } = {}) {
  keepQuietly &&= quietly;
  clearTimeout(keepTimer);
  keepTimer = setTimeout(() => {
    const quiet = keepQuietly;
    keepQuietly = true;
    keeping = keeping.then(() => keepProjectNow(quiet));
  }, 300);
}

async function keepProjectNow(quietly) {
  await projectRestored; // an empty page must not forget the kept project before it is back
  if (state.samples.size > MAX_KEPT_IMAGES) {
    if (!quietly) {
      $('project-status').textContent = `${state.samples.size} images are more than this browser keeps on its own ` +
        `(${MAX_KEPT_IMAGES}): download the project to keep them.`;
    }
    return;
  }
  try {
    const classes = await keptClasses();
    await keepProject({ image_size: $('image-size').value, settings: state.keptSettings ?? {}, own_data: state.ownData, classes });
    if (!quietly) await showStorage(classes.length ? `Your ${state.samples.size} images and settings are kept in this browser` : null);
  } catch (error) {
    $('project-status').textContent = `Your classes could not be kept in this browser (${error.message}): download the project to keep them.`;
  }
}

/** The storage this site uses, and whether the browser may clear it under pressure. */
async function showStorage(lead) {
  if (!lead) {
    $('project-status').textContent = '';
    return;
  }
  const report = await storageReport();
  const used = report ? ` · ${(report.usage / 2 ** 20).toFixed(1)} MB used of ${(report.quota / 2 ** 30).toFixed(1)} GB` +
    (report.persisted ? ', kept until you clear it' : ', which the browser may clear when the disk runs low') : '';
  $('project-status').textContent = `${lead}${used}.`;
}

/** The classes and settings of the last visit, unless the user has begun something else. */
async function restoreKeptProject() {
  let kept = null;
  try {
    kept = await keptProject();
  } catch {
    return; // no IndexedDB here (a private window, say): nothing was kept
  }
  if (!kept || state.samples.size > 0) return;
  state.samples.restore(kept.classes);
  // The image size is the data's: it follows the project only when its images are the data again
  // (not when a link loads the digits).
  const asData = kept.own_data && !controller.source;
  // A link that names data or settings describes its run: the rest are the defaults, not the
  // kept ones (which stay kept).
  const linked = ['dataset', 'batch', ...[...$('settings').elements].map((field) => field.name)].some((name) => params.has(name));
  applyProjectSettings({ image_size: asData ? kept.image_size : $('image-size').value, settings: linked ? {} : kept.settings });
  state.keptSettings = kept.settings;
  showOwnClasses();
  if (asData) sendOwnImages();
  await showStorage(`Your ${state.samples.size} images from the last visit are back`);
}

/** A project's image size and settings in the page (a deep link's settings still win). @param {{ image_size: string, settings: Record<string, string> }} project */
function applyProjectSettings({ image_size, settings }) {
  if ([...$('image-size').options].some((option) => option.value === image_size)) $('image-size').value = image_size;
  state.projectSettings = settings;
  // Before the worker is ready the form is still empty: fillSettings writes them then.
  if (!state.settingsFilled) return;
  for (const [name, value] of Object.entries(settings)) {
    const field = $('settings').elements[name];
    if (field) field.value = value;
  }
}

async function downloadProject() {
  $('download-project').disabled = true;
  try {
    const reply = state.model ? await controller.request({ type: 'save_model' }) : null;
    const model = reply?.type === 'model_file' ? { file_name: reply.file_name, bytes: reply.bytes } : null;
    const classes = await keptClasses();
    const bytes = await encodeProject({ image_size: $('image-size').value, settings: settingsFields(), own_data: state.ownData, classes, model });
    saveFile(`siamese-project${PROJECT_EXTENSION}`, bytes, 'application/octet-stream');
    $('project-file-status').textContent = `Downloaded the project: ${state.samples.size} images in ${classes.length} classes` +
      `${model ? ' and the model' : ''}, ${(bytes.length / 2 ** 20).toFixed(1)} MB.`;
  } finally {
    refreshButtons();
  }
}

/** A project file in place of the current one; refused whole (nothing changed) when it is not one. */
async function loadProjectFile(file) {
  if (!file) return;
  if (controller.training) {
    showMessage('Training is running: stop it before loading a project.');
    return;
  }
  let project;
  try {
    project = decodeProject(new Uint8Array(await file.arrayBuffer()));
  } catch (error) {
    showMessage(`${file.name} was not loaded: ${error.message}. Your current classes, settings and model stay.`);
    return;
  }
  applyProjectSettings(project);
  state.keptSettings = project.settings;
  state.samples.restore(project.classes);
  // The model first: the images that follow put it to work once decoded.
  if (project.model) {
    state.loadingKeptId = null;
    controller.send({ type: 'load_model', ...project.model }, [project.model.bytes.buffer]);
  }
  state.outOfDate = false;
  state.decoded = null;
  showOwnClasses();
  if (project.own_data) sendOwnImages();
  else useMnist();
  keepProjectSoon();
  $('project-file-status').textContent = `Loaded ${file.name}: ${state.samples.size} images in ${project.classes.length} classes` +
    `${project.model ? ' and its model' : ''}.`;
}

// ---- wiring ----------------------------------------------------------------------------

/** The settings form starts from the session's defaults (the article's), and a deep link's. */
/** @param {import('./messages').TrainConfig} defaults */
function fillSettings(defaults) {
  if (state.settingsFilled) return; // a restarted worker must not undo the user's edits
  state.settingsFilled = true;
  for (const [name, value] of Object.entries(defaults)) {
    const field = $('settings').elements[name];
    // No held-out classes arrive as undefined: an empty field, not the word.
    const shown = Array.isArray(value) ? value.join(', ') : (value ?? '');
    if (field) field.value = params.get(name === 'batch_size' ? 'batch' : name) ?? params.get(name) ?? state.projectSettings?.[name] ?? shown;
  }
  // The kept project's backend and workers, which the session's defaults do not hold.
  const backend = state.projectSettings?.backend;
  if (backend && !params.has('backend')) chooseBackend(backend);
  $('settings').elements.workers.value = params.get('workers') ?? state.projectSettings?.workers ?? DEFAULT_WORKERS;
  matchModuleToBackend();
}

/** Selects `backend`, one the form offers or not: a link's unknown value stays as given, for
 * the session to refuse by name rather than the form to drop. */
function chooseBackend(backend) {
  const select = $('settings').elements.backend;
  if (![...select.options].some((option) => option.value === backend)) {
    select.append(new Option(`${backend} (from the link)`, backend));
  }
  select.value = backend;
}

/** WebGPU chosen where the worker loaded the CPU-only module: the full one replaces it. */
function matchModuleToBackend() {
  if ($('settings').elements.backend.value === 'webgpu') controller.useWebGpuModule();
}

function applyDeepLink() {
  const backend = params.get('backend');
  if (backend) chooseBackend(backend);
  if (params.get('dataset') === 'mnist') useMnist();
}

$('use-mnist').addEventListener('click', useMnist);
$('use-own-images').addEventListener('click', sendOwnImages);
// The user's images are decoded at the chosen size: a new size loads them again.
$('image-size').addEventListener('change', () => {
  if (state.ownData && state.samples.size) sendOwnImages();
  keepProjectSoon();
});
$('camera-start').addEventListener('click', startCamera);
$('camera-stop').addEventListener('click', stopCamera);
const record = $('camera-record');
record.addEventListener('pointerdown', (e) => { if (e.button === 0) startRecording(); });
for (const end of ['pointerup', 'pointerleave', 'pointercancel', 'blur']) record.addEventListener(end, stopRecording);
record.addEventListener('keydown', (e) => {
  if (e.key !== ' ' && e.key !== 'Enter') return;
  e.preventDefault();
  if (!e.repeat) startRecording();
});
record.addEventListener('keyup', (e) => { if (e.key === ' ' || e.key === 'Enter') stopRecording(); });
$('settings').elements.backend.addEventListener('change', matchModuleToBackend);
$('train').addEventListener('click', startTraining);
$('stop').addEventListener('click', () => controller.stop());
$('compare').addEventListener('click', compareFiles);
$('compare-random').addEventListener('click', compareRandom);
$('neighbour-random').addEventListener('click', () => controller.send({ type: 'neighbours', query: randomTestImage(), k: 8 }));
$('neighbour-file').addEventListener('change', (e) => findNeighbours(e.target.files[0]));
$('unknown-distance').addEventListener('input', previewUnknownDistance);
$('map-epoch').addEventListener('input', showMapFrame);
$('export-projector').addEventListener('click', exportProjector);
$('download-split').addEventListener('click', downloadSplit);
$('unknown-distance').addEventListener('change', (e) =>
  controller.send({ type: 'set_unknown_distance', distance: Number(e.target.value) }));
$('enrol').addEventListener('click', enrolFiles);
$('enrol-held-out').addEventListener('click', () => controller.send({ type: 'enrol_held_out', images_per_class: 5 }));
const neighbourZone = $('neighbour-zone');
neighbourZone.addEventListener('dragover', (e) => { e.preventDefault(); neighbourZone.classList.add('over'); });
neighbourZone.addEventListener('dragleave', () => neighbourZone.classList.remove('over'));
neighbourZone.addEventListener('drop', (e) => {
  e.preventDefault();
  neighbourZone.classList.remove('over');
  findNeighbours(e.dataTransfer.files[0]);
});
$('download-model').addEventListener('click', downloadModel);
$('download-project').addEventListener('click', downloadProject);
$('load-project').addEventListener('change', (e) => {
  loadProjectFile(e.target.files[0]);
  e.target.value = '';
});
$('load-model').addEventListener('change', (e) => {
  loadModelFile(e.target.files[0]);
  e.target.value = '';
});
// Each input is emptied once read, so picking the same files again (after a refusal) is seen.
/** @type {[string, (file: File) => string][]} */
const PICKERS = [['pick-folder', (file) => file.webkitRelativePath], ['pick-files', () => '']];
for (const [id, pathOf] of PICKERS) {
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
const projectRestored = restoreKeptProject();
refreshButtons();
