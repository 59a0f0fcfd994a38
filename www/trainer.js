// The page's side of the training worker: starts it, queues messages until it is ready, and
// hands every message from it to `onMessage`. The message types are defined in
// src/session/messages.rs: every request gets an id that each of its replies echoes, and
// `request()` answers with the reply that ends it. Shared by the full page (app.js) and the
// widget (widget.js).

/** The built-in digits, beside the app's files wherever they are hosted. */
export const MNIST_URL = new URL('../assets/mnist-10k.bin.gz', import.meta.url).href;

/** CPU workers a run shares its batches among unless told: one per core, up to 8 (each holds
 * its own copy of the module and the model). */
export const DEFAULT_WORKERS = Math.max(1, Math.min(navigator.hardwareConcurrency || 1, 8));

/** A batch of files in flight to the worker: at most this many, or about this many bytes. */
const FILES_PER_BATCH = 256;
const BYTES_PER_BATCH = 32 * 2 ** 20;

/** Replies on the way to a request's answer (Reply::is_event in Rust); any other reply ends it. */
const EVENTS = new Set(['backend', 'progress', 'epoch']);

export class TrainerWorker {
  /**
   * @param {(message: import('./messages').Message) => void} onMessage
   * @param {{ webgpuModule?: boolean }} [options] load the full module (WebGPU) even where the
   *   adapter is a software renderer; else it is loaded only for a real GPU (worker.js)
   */
  constructor(onMessage, { webgpuModule = false } = {}) {
    this.onMessage = onMessage;
    this.askWebGpuModule = webgpuModule;
    /** The `ready` message of the current worker. @type {Extract<import('./messages').Message, { type: 'ready' }> | null} */
    this.readyMessage = null;
    // Request ids and file loads are counted over the trainer's whole life, restarts included,
    // so an answer or a load meant for a worker that was replaced never passes for a newer one.
    this.lastId = 0;
    this.fileLoads = 0;
    /** @type {number | null} the `end_files` request of the newest load, once it was sent */
    this.lastFilesEnd = null;
    /** Keys of images the loads taught since the page last asked (takeLearntKeys). */
    this.learntKeys = 0;
    this.pending = new Map();
    this.start();
  }

  start() {
    this.ready = false;
    this.readyMessage = null;
    this.queue = [];
    try {
      this.worker = new Worker(workerUrl(this.askWebGpuModule), { type: 'module' });
    } catch (error) {
      // A Content-Security-Policy without worker-src, for one; reported like any start failure.
      queueMicrotask(() => this.onMessage({ type: 'error', id: 0, fatal: true, message: `the training worker cannot start: ${error.message}` }));
      return;
    }
    this.worker.onmessage = (event) => {
      const message = event.data;
      if (message.type === 'ready') {
        this.ready = true;
        this.readyMessage = message;
        for (const [queued, transfer] of this.queue) this.worker.postMessage(queued, transfer);
        this.queue = [];
      }
      const answered = this.pending.get(message.id);
      if (answered && !EVENTS.has(message.type)) {
        this.pending.delete(message.id);
        answered(message);
      }
      this.onMessage(message);
    };
    this.worker.onerror = (event) => {
      event.preventDefault();
      this.onMessage({ type: 'error', id: 0, fatal: true, message: `the training worker failed: ${event.message || 'it could not start'}` });
    };
  }

  /** Ends the worker (a fatal error leaves its wasm unusable) and starts a fresh one. */
  restart() {
    this.worker?.terminate();
    for (const [id, answered] of this.pending) answered({ type: 'error', id, fatal: true, message: 'the worker restarted' });
    this.pending.clear();
    this.start();
  }

  /**
   * Sends dropped or picked files ({file, path}) to be the data, in batches: each batch is read
   * only once the worker has decoded the one before (its `files_read` answer), so memory holds
   * one batch of files however many there are. A newer call, or a worker error, ends this one.
   * @returns {Promise<boolean>} whether every file was sent
   */
  async sendFiles(entries, shape) {
    const load = ++this.fileLoads;
    // An older load's answer, arriving while this one is being sent, is out of date already.
    this.lastFilesEnd = null;
    const begun = await this.request({ type: 'begin_files', total: entries.length, ...shape });
    if (begun.type !== 'files_read' || load !== this.fileLoads) return false;
    for (let start = 0; start < entries.length;) {
      const batch = [];
      for (let bytes = 0; start < entries.length && batch.length < FILES_PER_BATCH && bytes < BYTES_PER_BATCH; start++) {
        batch.push(entries[start]);
        bytes += entries[start].file.size;
      }
      const files = await readLabelledFiles(batch);
      if (load !== this.fileLoads) return false;
      const answer = await this.request({ type: 'add_files', files }, files.map((f) => f.bytes.buffer));
      if (answer.type !== 'files_read' || load !== this.fileLoads) return false;
      answer.keys.forEach((key, i) => {
        if (key && imageKeyOf(batch[i].file) !== key) {
          imageKeys.set(batch[i].file, key);
          this.learntKeys += 1;
        }
      });
    }
    // Its `dataset_loaded` answer carries this id: an older load's answer is told apart by it.
    this.lastFilesEnd = this.send({ type: 'end_files' });
    return true;
  }

  /** Whether a load taught keys of images not known before (the page keeps them), since asked last. */
  takeLearntKeys() {
    const learnt = this.learntKeys > 0;
    this.learntKeys = 0;
    return learnt;
  }

  /**
   * Sends a request; its replies reach `onMessage` with its id.
   * @param {import('./messages').Command} message @param {Transferable[]} [transfer]
   * @returns {number} the id
   */
  send(message, transfer = []) {
    const request = { ...message, id: ++this.lastId };
    if (this.ready) this.worker.postMessage(request, transfer);
    else this.queue.push([request, transfer]);
    return request.id;
  }

  /**
   * Sends a request and answers with the reply that ends it: its result or an `error`.
   * @param {import('./messages').Command} message @param {Transferable[]} [transfer]
   * @returns {Promise<import('./messages').Message>}
   */
  request(message, transfer = []) {
    return new Promise((resolve) => this.pending.set(this.send(message, transfer), resolve));
  }
}

/** worker.js beside this file, asked for the full module or not. Browsers start workers only
 * from the page's origin, so files hosted elsewhere (a CDN) start through a same-origin blob
 * that imports the real script. */
function workerUrl(webgpuModule) {
  const url = new URL(webgpuModule ? './worker.js?webgpu' : './worker.js', import.meta.url);
  if (url.origin === location.origin) return url;
  const trampoline = new Blob([`import ${JSON.stringify(url.href)};`], { type: 'text/javascript' });
  return URL.createObjectURL(trampoline);
}

/** One line on what the worker found: a real GPU, a software renderer, or no WebGPU. */
export function describeWebGpu(webgpu) {
  switch (webgpu?.kind) {
    case 'hardware':
      return `WebGPU is available (${webgpu.adapter}): training will run on the GPU.`;
    case 'software':
      return 'WebGPU here is only a software renderer, slower than the CPU: training will run on the CPU ' +
        '(choose WebGPU to try it anyway).';
    default:
      return `No WebGPU (${webgpu?.reason ?? 'unknown'}): training will run on the CPU.`;
  }
}

export function formatSeconds(seconds) {
  const s = Math.max(0, Math.round(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

export const percent = (x) => `${(100 * x).toFixed(2)} %`;

/** What a model's test figures left out (the test images it trained on), or could not check:
 * said beside them by the page and the widget. @param {number | null} leftOut */
export function seenImagesNote(leftOut) {
  if (leftOut == null) {
    return ' (this model\'s file does not list the images it trained on: an earlier version saved it, ' +
      'so these figures may include some)';
  }
  return leftOut ? ` (${leftOut} test images the model trained on were left out)` : '';
}

/** The progress bar's spoken value: where the run is, not its every figure. */
export function progressValueText(p) {
  const { done, remaining_s } = runProgress(p);
  return `Epoch ${p.epoch} of ${p.epochs}, ${Math.floor(100 * done)} % done, about ${formatSeconds(remaining_s)} left`;
}

/** Fraction of the run done and the seconds left, from a `progress` message. */
export function runProgress(p) {
  const done = (p.epoch - 1 + p.step / p.steps_per_epoch) / p.epochs;
  return { done, remaining_s: p.elapsed_s * (1 / Math.max(done, 1e-9) - 1) };
}

/** The key the session gave each file sent (a hash of its decoded pixels), and the file each
 * shrunk copy was made from: a copy keeps its image's key, so its place in the split and in the
 * models that trained on it. @type {WeakMap<Blob, string>} */
const imageKeys = new WeakMap();
/** @type {WeakMap<Blob, Blob>} */
const copiedFrom = new WeakMap();

/** The key of the image `file` holds, when the session gave one. @param {Blob} file @returns {string | undefined} */
export function imageKeyOf(file) {
  return imageKeys.get(file) ?? (copiedFrom.has(file) ? imageKeyOf(copiedFrom.get(file)) : undefined);
}

/** `copy` holds the image of `original` (shrunk, or read back from a kept project with its key). */
export function sameImage(copy, original) {
  if (copy !== original) copiedFrom.set(copy, original);
}

/** A key kept with a file of a project. @param {Blob} file @param {string | undefined} key */
export function keepImageKey(file, key) {
  if (key) imageKeys.set(file, key);
}

/** Reads dropped or picked files ({file, path, className?, group?}) as the session's uploaded
 * files: of the class and group given, else those their path says. */
async function readLabelledFiles(entries) {
  const files = [];
  for (const { file, path, className, group } of entries) {
    const bytes = new Uint8Array(await file.arrayBuffer());
    files.push({
      class_name: className ?? classOf(path, file.name), file_name: path || file.name, bytes,
      group: group ?? groupOf(path) ?? undefined, key: imageKeyOf(file),
    });
  }
  return files;
}

/** The folder holding the file, or for a loose file the start of its name (`cat_01.png` -> cat).
 * A folder whose name starts with @ is a group of the class above it (`cats/@monday/a.jpg`). The
 * command line's rule too (src/data/folder.rs). */
export function classOf(path, name) {
  const parts = (path || '').split('/').filter(Boolean);
  if (parts.length >= 3 && parts[parts.length - 2].startsWith('@')) return parts[parts.length - 3];
  if (parts.length >= 2) return parts[parts.length - 2];
  const stem = name.replace(/\.[^.]*$/, '');
  return stem.split(/[_\-\s\d]/).find(Boolean) || stem;
}

/** The group of a file in a group folder, named by its class and folder (`cats/@monday`) so that
 * it is the same wherever the folders were picked from, or null. */
export function groupOf(path) {
  const parts = (path || '').split('/').filter(Boolean);
  return parts.length >= 3 && parts[parts.length - 2].startsWith('@') ? parts.slice(-3, -1).join('/') : null;
}

/** Files of a drop, walking dropped folders; each with the path that carries its class. */
export async function droppedFiles(dataTransfer) {
  const found = [];
  const walk = async (entry, path) => {
    if (entry.isFile) {
      const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
      found.push({ file, path: `${path}${file.name}` });
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
        if (batch.length === 0) break;
        for (const child of batch) await walk(child, `${path}${entry.name}/`);
      }
    }
  };
  const entries = [...dataTransfer.items].map((item) => item.webkitGetAsEntry?.()).filter(Boolean);
  if (entries.length === 0) return [...dataTransfer.files].map((file) => ({ file, path: '' }));
  for (const entry of entries) await walk(entry, '');
  return found;
}

/** Paints an RGBA thumbnail from the worker onto a new canvas. */
export function thumbnailCanvas({ width, height, rgba }, size = 56) {
  const canvas = document.createElement('canvas');
  canvas.width = width;
  canvas.height = height;
  canvas.style.width = canvas.style.height = `${size}px`;
  canvas.getContext('2d').putImageData(new ImageData(new Uint8ClampedArray(rgba), width, height), 0, 0);
  return canvas;
}
