// <siamese-trainer>: a live, trainable Siamese network for a blog post. One script tag and one
// element per widget; everything it loads (worker, wasm, digits, Chart.js, styles) is found
// relative to this file, so the built files work from any folder or CDN path.
//
//   <script type="module" src="/files/siamese-web/www/widget.js"></script>
//   <siamese-trainer dataset="mnist" epochs="3" compact>A live demo (needs JavaScript).</siamese-trainer>
//   <siamese-trainer model="digits.siamese">…</siamese-trainer>  (starts from a model saved by the app)
//   <siamese-trainer hold-out="8, 9">…</siamese-trainer>  (trains without those digits, then
//     says how often it calls them none of the above)
//
// Each widget has its own worker, so several train independently. Its styles live in its Shadow
// DOM; the element's text content shows only where the script cannot run.
// Nothing heavy (the worker, the wasm, the digits) loads until the widget comes within 200 px of
// the viewport or Train is pressed, as Distill's d-figure waits, so an article with several
// widgets loads each as the reader reaches it; until then its status says what it will download.
// `autostart` starts at once.
//
// The element's `data-state` (waiting, loading, idle, training, done, error) and its `result` property
// (the figures of the last run) are there for pages and tests; a `siamese-result` event fires
// when a run ends.
import { thumbnailCanvas, describeWebGpu, formatSeconds, percent, runProgress, progressValueText, MNIST_URL, seenImagesNote } from './trainer.js';
import { TrainingController } from './controller.js';
import { downloadBytes } from './features.js';

const STYLESHEET = new URL('./widget.css', import.meta.url).href;
const FULL_APP = new URL('../index.html', import.meta.url).href;

/** Attribute -> TrainConfig field; the session checks the values (TrainConfig::validate). */
const SETTINGS = [
  ['epochs', 'epochs'],
  ['batch', 'batch_size'],
  ['learning-rate', 'learning_rate'],
  ['margin', 'margin'],
  ['validation-split', 'validation_split'],
  ['seed', 'seed'],
  ['hold-out', 'held_out_classes'],
  ['backend', 'backend'],
];

const TEMPLATE = `
  <link rel="stylesheet" href="${STYLESHEET}">
  <div class="widget">
    <div class="head">
      <strong>Siamese network, trained in your browser</strong>
      <span class="status" data-ref="status">Loading…</span>
    </div>
    <div class="upload" data-ref="upload" hidden>
      <label class="button secondary">Choose a folder of images…
        <input data-ref="folder" type="file" webkitdirectory multiple hidden></label>
      <span class="hint">one sub-folder per class; nothing leaves your browser</span>
    </div>
    <div class="controls">
      <button type="button" data-ref="train" disabled>Train</button>
      <button type="button" data-ref="stop" class="secondary" disabled>Stop</button>
      <span class="data-summary" data-ref="summary"></span>
    </div>
    <progress data-ref="progress" max="1" value="0" aria-label="Training progress" aria-valuetext="Not started"></progress>
    <!-- Moves every step, so not read out: the announcer says each epoch, and the metrics the end. -->
    <p class="progress-text" data-ref="progressText"></p>
    <p class="visually-hidden" data-ref="announce" role="status"></p>
    <div class="chart"><canvas data-ref="loss" aria-label="Loss during training"></canvas></div>
    <p class="metrics" data-ref="metrics" aria-live="polite"></p>
    <p class="uses" data-ref="uses" aria-live="polite"></p>
    <div class="chart" data-ref="histogramBox" hidden><canvas data-ref="histogram" aria-label="Distances of test pairs"></canvas></div>
    <div class="pairs" data-ref="pairs"></div>
    <p class="error" data-ref="error" role="alert" hidden></p>
    <a class="full-app" data-ref="fullApp" target="_blank" rel="noopener">Open in the full app ↗</a>
  </div>`;

/** @typedef {import('./messages').Message} Message */

class SiameseTrainer extends HTMLElement {
  connectedCallback() {
    // Moved within the page: it keeps its state, and its worker or its wait for the viewport.
    if (this.controller || this.viewportWatch) return;
    if (!this.shadowRoot) this.build();
    // A dataset it cannot use is said at once (loadData), not when the reader gets there.
    const knownData = ['mnist', 'upload'].includes(this.datasetName());
    if (this.hasAttribute('autostart') || !knownData || !('IntersectionObserver' in window)) {
      this.start();
      return;
    }
    this.showState('waiting');
    this.sayDownload();
    this.viewportWatch = new IntersectionObserver((entries) => {
      if (entries.some((entry) => entry.isIntersecting)) this.start();
    }, { rootMargin: '200px' });
    this.viewportWatch.observe(this);
  }

  /** Starts the worker and loads the data. */
  start() {
    this.viewportWatch?.disconnect();
    this.viewportWatch = null;
    if (this.controller) return;
    this.showState('loading');
    this.ui.status.textContent = 'Loading…';
    this.controller = new TrainingController({
      state: (name) => this.showState(name),
      reply: (message) => this.onMessage(message),
      restarted: ({ webgpuFailed }) => this.onRestarted(webgpuFailed),
      unavailable: (message) => this.fail(message),
    }, { webgpuModule: this.getAttribute('backend')?.toLowerCase() === 'webgpu' });
    this.loadData();
  }

  disconnectedCallback() {
    // Removed for good (not just moved): end the worker and the run with it.
    queueMicrotask(() => {
      if (this.isConnected) return;
      this.viewportWatch?.disconnect();
      this.viewportWatch = null;
      this.controller?.close();
      this.controller = null;
    });
  }

  build() {
    const root = this.attachShadow({ mode: 'open' });
    root.innerHTML = TEMPLATE;
    /** @type {Record<string, any>} */
    this.ui = Object.fromEntries([...root.querySelectorAll('[data-ref]')].map((el) => [/** @type {HTMLElement} */ (el).dataset.ref, el]));
    this.compact = this.hasAttribute('compact');
    this.trainWhenLoaded = this.hasAttribute('autostart');
    this.ui.upload.hidden = this.datasetName() !== 'upload';
    this.ui.fullApp.href = `${FULL_APP}?${new URLSearchParams(this.datasetName() === 'mnist' ? { dataset: 'mnist' } : {})}`;
    this.ui.train.addEventListener('click', () => this.train());
    this.ui.stop.addEventListener('click', () => this.controller?.stop());
    this.ui.folder.addEventListener('change', (event) => this.useFolder([...event.target.files]));
    this.showState('loading');
    this.charts = import('./charts.js').then((charts) => {
      this.lossChart = new charts.LossChart(this.ui.loss);
      return charts;
    });
    this.charts.catch((error) => this.fail(`the charts could not load (${error.message})`));
  }

  /** What starting will download, in the status line while the widget waits. */
  async sayDownload() {
    const data = this.datasetName() === 'mnist' ? [MNIST_URL] : [];
    const bytes = await downloadBytes(this.getAttribute('backend')?.toLowerCase() === 'webgpu', data).catch(() => null);
    if (this.dataset.state !== 'waiting') return;
    const what = data.length ? 'the trainer and the digits' : 'the trainer';
    this.ui.status.textContent = `Starts when you reach it or press Train: it downloads ${what}` +
      `${bytes == null ? '' : `, ${(bytes / 1e6).toFixed(1)} MB`}.`;
  }

  datasetName() {
    return (this.getAttribute('dataset') ?? 'mnist').toLowerCase();
  }

  /** The controller's state, or `error` for good once the widget cannot work here. */
  showState(name) {
    const state = this.failed ? 'error' : name;
    this.dataset.state = state;
    // Waiting, Train starts the widget and trains once the data is loaded.
    const usable = state === 'waiting' || (this.loaded && !this.loaded.problem && !this.failed);
    this.ui.train.disabled = state === 'training' || state === 'loading' || !usable;
    this.ui.stop.disabled = state !== 'training';
    this.ui.folder.disabled = state === 'training';
  }

  /** `source` 'data' marks a message about the loaded data, which new data replaces. */
  showError(text, source = 'other') {
    this.ui.error.textContent = text;
    this.ui.error.hidden = false;
    this.errorSource = source;
  }

  /** Something that leaves the widget unable to work: said in place, the host page untouched. */
  fail(reason) {
    this.failed = true;
    this.showError(`This demo cannot run here: ${reason}.`);
    this.ui.status.textContent = 'Not available.';
    this.showState('error');
  }

  /** @param {Message} message */
  onMessage(message) {
    switch (message.type) {
      case 'ready':
        this.defaults = message.defaults;
        this.ui.status.textContent = describeWebGpu(message.webgpu);
        break;
      case 'files_read':
        this.ui.summary.textContent = `Reading files: ${message.done} of ${message.total}…`;
        break;
      case 'dataset_loaded':
        this.onDataset(message);
        break;
      case 'backend':
        this.ui.status.textContent = `Training on ${message.backend === 'webgpu' ? 'WebGPU' : 'the CPU'}: ${message.reason}.`;
        break;
      case 'progress':
        this.onProgress(message);
        break;
      case 'epoch':
        this.lossChart?.addEpoch(message);
        this.ui.announce.textContent = `Epoch ${message.epoch} done` +
          `${message.validation_acc == null ? '' : `: validation pair accuracy ${percent(message.validation_acc)}`}.`;
        break;
      case 'done':
        this.onDone(message);
        break;
      case 'analysis':
        this.ui.uses.textContent = message.knn_acc == null ? message.note :
          `Classifying test images by their embeddings: ${percent(message.knn_acc)} with the ` +
          `${message.knn_k} nearest training images, ${percent(message.one_shot_acc)} ${message.one_shot_ways}-way one-shot ` +
          `(one example per class)${seenImagesNote(message.seen_images_left_out)}.${noneOfTheAbove(message.open_set)}`;
        this.analysis = message;
        this.dispatchEvent(new CustomEvent('siamese-analysis', { detail: message, bubbles: true, composed: true }));
        break;
      case 'model_loaded':
        this.ui.metrics.textContent = `Pretrained model (${message.info.dataset}, ${message.info.epochs_trained} epoch(s)): ` +
          `test pair accuracy ${message.info.test_acc == null ? '—' : percent(message.info.test_acc)}. Train to start over.`;
        break;
      case 'error':
        this.onError(message);
        break;
    }
  }

  /** The `model` and the digits, sent at once (the worker takes them when it is ready). */
  loadData() {
    this.loaded = null;
    if (this.hasAttribute('model')) this.loadModel(this.getAttribute('model'));
    const dataset = this.datasetName();
    if (dataset === 'mnist') {
      const sample = (name) => (this.hasAttribute(name) ? Number(this.getAttribute(name)) : null);
      this.ui.summary.textContent = 'Loading the MNIST digits…';
      this.controller.useMnist({ train_images: sample('train-images'), test_images: sample('test-images') });
    } else if (dataset === 'upload') {
      this.ui.summary.textContent = 'Choose a folder to train on.';
    } else {
      this.fail(`dataset="${dataset}" is unknown (use "mnist" or "upload")`);
    }
  }

  /** `model`: a model file saved by the app, relative to the page; used until the reader trains. */
  async loadModel(path) {
    const url = new URL(path, document.baseURI);
    try {
      const response = await fetch(url);
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const bytes = new Uint8Array(await response.arrayBuffer());
      this.controller.send({ type: 'load_model', file_name: url.pathname.split('/').pop(), bytes }, [bytes.buffer]);
    } catch (error) {
      this.showError(`The pretrained model ${path} could not be loaded (${error.message}); train one instead.`);
    }
  }

  async useFolder(files) {
    const images = files.filter((file) => !file.name.startsWith('.'));
    if (images.length === 0) return;
    const shape = this.imageShape();
    if (!shape) return;
    this.start(); // a folder chosen before the widget was seen
    this.ui.summary.textContent = `Reading ${images.length} files…`;
    await this.controller.useFiles(images.map((file) => ({ file, path: file.webkitRelativePath })), shape);
  }

  /** `image-size`, e.g. "28x28 grey" (the default), "64x64 rgb", "224x224 rgb". */
  imageShape() {
    const text = (this.getAttribute('image-size') ?? '28x28 grey').toLowerCase();
    const match = text.match(/^\s*(\d+)\s*x\s*(\d+)\s*(grey|gray|rgb)?\s*$/);
    if (!match) {
      this.showError(`image-size="${text}" is not a size like "28x28 grey" or "64x64 rgb".`);
      return null;
    }
    return { width: Number(match[1]), height: Number(match[2]), channels: match[3] === 'rgb' ? 3 : 1 };
  }

  /** @param {import('./messages').DatasetSummary} summary */
  onDataset(summary) {
    this.loaded = summary;
    if (this.errorSource === 'data') this.ui.error.hidden = true;
    this.ui.summary.textContent = `${summary.train_images + summary.test_images} images, ${summary.classes.length} classes`;
    if (summary.file_errors.length > 0) {
      this.showError(`Skipped ${summary.file_errors.length} file(s): ${summary.file_errors.slice(0, 3).join('; ')}`, 'data');
    }
    if (summary.problem) this.showError(`This data cannot train yet: ${summary.problem}.`, 'data');
    this.showState(this.controller.state);
    if (this.trainWhenLoaded && !summary.problem) {
      this.trainWhenLoaded = false;
      this.train();
    }
  }

  /** The run's settings: the attributes as written (the session's defaults for the rest), which
   * the session reads and checks, naming an attribute's setting and value it refuses.
   * @returns {import('./messages').RunSettings} */
  settings() {
    const settings = Object.fromEntries(SETTINGS
      .filter(([attribute]) => this.hasAttribute(attribute))
      .map(([attribute, field]) => [field, this.getAttribute(attribute)]));
    return /** @type {import('./messages').RunSettings} */ (settings);
  }

  train() {
    if (!this.controller) {
      this.trainWhenLoaded = true;
      this.start();
      return;
    }
    const settings = this.settings();
    this.ui.error.hidden = true;
    this.ui.progress.value = 0;
    this.ui.progress.setAttribute('aria-valuetext', 'Starting');
    this.ui.progressText.textContent = 'Starting…';
    this.ui.announce.textContent = `Training started: ${settings.epochs ?? this.defaults.epochs} epoch(s).`;
    this.ui.metrics.textContent = '';
    this.ui.uses.textContent = '';
    this.ui.pairs.replaceChildren();
    this.lossChart?.reset(Number(settings.epochs ?? this.defaults.epochs) || 1);
    this.controller.train(settings);
  }

  /** @param {import('./messages').BatchProgress} p */
  onProgress(p) {
    const { done, remaining_s } = runProgress(p);
    this.ui.progress.value = done;
    this.ui.progress.setAttribute('aria-valuetext', progressValueText(p));
    this.ui.progressText.textContent = `Epoch ${p.epoch}/${p.epochs} · loss ${p.loss.toFixed(3)} · ` +
      `${p.pairs_per_s.toFixed(0)} pairs/s · ${formatSeconds(remaining_s)} left`;
    this.lossChart?.addBatch(p);
  }

  /** @param {import('./messages').RunReport} report */
  async onDone({ result, evaluation, gallery, stopped, interrupted, note }) {
    this.result = result;
    if (interrupted) this.showError(interrupted);
    this.ui.progress.value = stopped || interrupted ? this.ui.progress.value : 1;
    this.ui.progressText.textContent = `${stopped || interrupted ? 'Stopped' : 'Done'}: ${result.epochs} epoch(s) in ` +
      `${result.train_s.toFixed(0)} s on ${result.backend === 'webgpu' ? 'WebGPU' : 'the CPU'}.`;
    this.ui.progress.setAttribute('aria-valuetext', this.ui.progressText.textContent);
    this.ui.announce.textContent = this.ui.progressText.textContent;
    this.ui.metrics.textContent = result.test_acc == null ? note :
      `Test pair accuracy ${percent(result.test_acc)} (dissimilar if D > 0.5), ` +
      `${percent(result.test_acc_best)} at the best threshold ${result.best_threshold.toFixed(2)} · ` +
      `ROC AUC ${result.auc.toFixed(3)}`;
    this.ui.pairs.replaceChildren(...gallery.slice(0, this.compact ? 4 : 8).map((pair) => pairCard(pair)));
    this.dispatchEvent(new CustomEvent('siamese-result', { detail: result, bubbles: true, composed: true }));
    if (!this.compact && evaluation) {
      const charts = await this.charts;
      this.ui.histogramBox.hidden = false;
      this.histogram = charts.histogramChart(this.ui.histogram, evaluation, result.best_threshold, this.histogram);
    }
  }

  onError({ message }) {
    this.showError(message);
  }

  /** A fresh worker replaced one that failed; the controller loads the data again. */
  onRestarted(webgpuFailed) {
    this.ui.summary.textContent = 'Restarting…';
    if (this.hasAttribute('model')) this.loadModel(this.getAttribute('model'));
    if (webgpuFailed) {
      this.showError(`WebGPU failed during training (${this.ui.error.textContent}): the demo restarted on the CPU; press Train.`);
    }
  }
}

/** What it says of classes it never saw, when some were held out of training.
 * @param {import('./messages').OpenSetReport | null} report */
function noneOfTheAbove(report) {
  if (report?.unknowns.kind !== 'held_out') return '';
  const { chosen } = report;
  return ` Never trained on ${report.unknowns.classes.join(', ')}: ${percent(1 - chosen.far)} of those images ` +
    `are called none of the above, and ${percent(chosen.recognised)} of the known ones recognised as their class.`;
}

/** @param {import('./messages').GalleryPair} pair */
function pairCard({ left, right, distance, dissimilar, predicted_dissimilar: predicted }) {
  const card = document.createElement('figure');
  card.className = `pair ${predicted === dissimilar ? 'right' : 'wrong'}`;
  const images = document.createElement('div');
  images.append(thumbnailCanvas(left, 40), thumbnailCanvas(right, 40));
  const caption = document.createElement('figcaption');
  caption.textContent = `D = ${distance.toFixed(2)} ${predicted === dissimilar ? '✓' : '✗'}`;
  caption.title = `predicted ${predicted ? 'dissimilar' : 'similar'}, truly ${dissimilar ? 'dissimilar' : 'similar'}`;
  card.append(images, caption);
  return card;
}

if (!customElements.get('siamese-trainer')) customElements.define('siamese-trainer', SiameseTrainer);
