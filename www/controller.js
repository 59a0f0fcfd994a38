// One controller for the page (app.js) and the widget (widget.js): the training worker, the
// state both views show (loading, idle, training, done, error), the data to load again after a
// restart, and what happens when the worker fails: a fresh worker with the same data, on the CPU
// when WebGPU failed during a run. It also swaps the CPU-only module for the full one when
// WebGPU is chosen where the worker loaded the first. The views draw what it reports and decide
// nothing of this.
import { TrainerWorker, MNIST_URL, DEFAULT_WORKERS } from './trainer.js';

/** @typedef {import('./messages').Message} Reply */
/** @typedef {'loading' | 'idle' | 'training' | 'done' | 'error'} ControllerState */
/**
 * What a view draws; every member is optional.
 * @typedef {object} View
 * @property {(name: ControllerState) => void} [state] each change of state
 * @property {(message: Reply) => void} [reply] each reply of the worker
 * @property {(restart: { webgpuFailed: boolean, webgpuModule: boolean }) => void} [restarted] a fresh
 *   worker replaced a failed one, or one without WebGPU (`webgpuModule`)
 * @property {(message: string) => void} [unavailable] the worker cannot start at all (no wasm)
 */

export class TrainingController {
  /**
   * @param {View} view
   * @param {{ webgpuModule?: boolean }} [options] start with the full module (WebGPU chosen)
   */
  constructor(view, { webgpuModule = false } = {}) {
    this.view = view;
    /** @type {ControllerState} */
    this.state = 'loading';
    /** What to load again in a fresh worker. @type {null | { mnist: object } | { files: object[], shape: object }} */
    this.source = null;
    /** After WebGPU failed during a run, the runs of this controller train on the CPU. */
    this.cpuOnly = false;
    this.restarting = false;
    /** The id of the current run's request: its error, and no other, ends the run. */
    this.runId = null;
    this.runBackend = null;
    this.trainer = new TrainerWorker((message) => this.onMessage(message), { webgpuModule });
  }

  /**
   * Makes WebGPU trainable where the worker loaded the CPU-only module (a software adapter, as
   * without a GPU): a fresh worker loads the full module and gets the same data, as after a
   * failure. Nothing happens where the module has WebGPU, the browser has none, or a run is on.
   * @returns {boolean} whether the worker is being replaced
   */
  useWebGpuModule() {
    const ready = this.trainer.readyMessage;
    if (this.training || this.cpuOnly || this.trainer.askWebGpuModule) return false;
    if (ready && (ready.webgpu_module || ready.webgpu.kind === 'missing')) return false;
    this.trainer.askWebGpuModule = true;
    this.setState('loading');
    this.replaceWorker({ webgpuFailed: false, webgpuModule: true });
    return true;
  }

  /** A fresh worker, which gets the same data once it is ready (onMessage).
   * @param {{ webgpuFailed: boolean, webgpuModule: boolean }} restart what the view is told */
  replaceWorker(restart) {
    this.restarting = true;
    this.trainer.restart();
    this.view.restarted?.(restart);
  }

  /** @param {ControllerState} name */
  setState(name) {
    this.state = name;
    this.view.state?.(name);
  }

  get training() {
    return this.state === 'training';
  }

  /** The built-in digits, or a stratified sample of each part ({ train_images, test_images }). */
  useMnist(sample = {}) {
    this.source = { mnist: sample };
    return this.trainer.send({
      type: 'use_mnist', url: MNIST_URL, train_images: sample.train_images ?? null, test_images: sample.test_images ?? null,
    });
  }

  /** The user's files ({file, path}) at `shape`. @returns {Promise<boolean>} whether all were sent */
  useFiles(entries, shape) {
    this.source = { files: entries, shape };
    return this.trainer.sendFiles(entries, shape);
  }

  /**
   * @param {import('./messages').RunSettings} settings as given (the session checks them); on
   *   the CPU, `workers` share each batch (by default one per core)
   */
  train(settings) {
    this.setState('training');
    this.runBackend = null;
    // After a WebGPU failure a GPU choice trains on the CPU; any other value goes to the
    // session as given, to be refused by name if it is none.
    const gpu = ['auto', 'webgpu', undefined].includes(settings.backend?.trim().toLowerCase());
    const backend = this.cpuOnly && gpu ? 'cpu' : settings.backend;
    this.runId = this.trainer.send({ type: 'train', settings: { workers: String(DEFAULT_WORKERS), ...settings, backend } });
  }

  stop() {
    this.trainer.send({ type: 'stop' });
  }

  send(message, transfer = []) {
    return this.trainer.send(message, transfer);
  }

  request(message, transfer = []) {
    return this.trainer.request(message, transfer);
  }

  /** Ends the worker for good (the widget removed from its page). */
  close() {
    this.trainer.worker?.terminate();
    this.setState('loading');
  }

  /** @param {Reply} message */
  onMessage(message) {
    switch (message.type) {
      case 'ready':
        if (this.state === 'loading') this.setState('idle');
        break;
      case 'dataset_loaded':
        if (!this.training) this.setState('idle');
        break;
      case 'backend':
        this.runBackend = message.backend;
        break;
      case 'error':
        this.onError(message);
        return;
      default:
        break;
    }
    this.view.reply?.(message);
    if (message.type === 'done') this.setState('done');
    if (message.type === 'ready' && this.restarting) {
      this.restarting = false;
      this.reload();
    }
  }

  /** @param {Reply & { type: 'error' }} message */
  onError(message) {
    if (message.fatal && !this.trainer.ready) {
      // It never started (the wasm could not load): starting it again would fail the same way.
      this.setState('error');
      this.view.unavailable?.(message.message);
      return;
    }
    const runFailed = this.training && (message.id === this.runId || message.fatal);
    if (runFailed || message.fatal) this.setState('error');
    this.view.reply?.(message);
    if (message.fatal) {
      // A panic leaves the worker's wasm unusable, and Burn keeps a failed GPU device for the
      // worker's lifetime: a fresh worker gets the same data, and the CPU if WebGPU failed.
      const webgpuFailed = runFailed && this.runBackend === 'webgpu';
      if (webgpuFailed) {
        this.cpuOnly = true;
        this.trainer.askWebGpuModule = false;
      }
      this.replaceWorker({ webgpuFailed, webgpuModule: false });
    }
  }

  reload() {
    const source = this.source;
    if (!source) return;
    if ('mnist' in source) this.useMnist(source.mnist);
    else this.useFiles(source.files, source.shape);
  }
}
