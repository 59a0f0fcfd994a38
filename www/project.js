// The whole project of the page: the user's classes (their images shrunk to the largest size the
// page trains at), the image size, the settings and the current model, as one file to download
// and load, and kept in this browser (IndexedDB) across reloads. The file is a fixed magic line,
// a JSON header that lists every part with its byte length, then the parts' bytes in that order.

import { objectStore } from './idb.js';
import { imageKeyOf, keepImageKey, sameImage } from './trainer.js';

const MAGIC = 'SIAMESE-PROJECT\n';
export const PROJECT_VERSION = 1;
export const PROJECT_EXTENSION = '.siamese-project';
/** Images are kept no larger than this on their long side: the page's largest image size. */
const KEPT_SIDE = 224;
/** Beyond this many images the browser does not keep them on its own (download the project). */
export const MAX_KEPT_IMAGES = 2000;

/**
 * @typedef {object} Project
 * @property {string} image_size the image size field's value ("1,28,28")
 * @property {Record<string, string>} settings the settings form's fields
 * @property {boolean} own_data whether the user's images were the data (not the digits)
 * @property {[string, KeptFile[]][]} classes
 * @property {{ file_name: string, bytes: Uint8Array } | null} model
 */

/**
 * A file of the user's classes as a project keeps it.
 * @typedef {object} KeptFile
 * @property {File} file
 * @property {boolean} captured whether it came from the camera
 * @property {string} [group] its camera hold or group folder
 * @property {string} [path] the path it was picked or dropped with (`photos/cats/a.jpg`)
 * @property {string} [key] the key of the image it holds (kept in the project: see imageKeyOf)
 */

const shrunk = new WeakMap();

/** A file read back from a project, shrunk when it was kept: not decoded again to keep it. @param {File} file */
function alreadyKept(file) {
  shrunk.set(file, file);
  return file;
}

/** The file as kept: shrunk to fit KEPT_SIDE when larger (once per file), else as it is; a file
 * the browser cannot decode stays as it is, for the trainer to name it again. @param {File} file */
export async function keptImage(file) {
  if (shrunk.has(file)) return shrunk.get(file);
  let kept = file;
  try {
    const bitmap = await createImageBitmap(file);
    const scale = KEPT_SIDE / Math.max(bitmap.width, bitmap.height);
    if (scale < 1) {
      const canvas = new OffscreenCanvas(Math.max(1, Math.round(bitmap.width * scale)), Math.max(1, Math.round(bitmap.height * scale)));
      canvas.getContext('2d').drawImage(bitmap, 0, 0, canvas.width, canvas.height);
      const type = file.type === 'image/jpeg' ? 'image/jpeg' : 'image/png';
      const blob = await canvas.convertToBlob({ type, quality: 0.92 });
      kept = new File([blob], file.name.replace(/\.[^.]*$/, '') + (type === 'image/jpeg' ? '.jpg' : '.png'), { type });
      sameImage(kept, file);
    }
    bitmap.close();
  } catch {
    // Not an image this browser decodes: kept as it is.
  }
  shrunk.set(file, kept);
  return kept;
}

/** The project as one file's bytes. @param {Project} project @returns {Promise<Uint8Array>} */
export async function encodeProject(project) {
  const parts = [];
  const classes = project.classes.map(([name, files]) => ({
    name,
    files: files.map(({ file, captured, group, path }) => {
      parts.push(file);
      return { name: file.name, type: file.type, bytes: file.size, captured, group, path, key: imageKeyOf(file) };
    }),
  }));
  if (project.model) parts.push(new Blob([/** @type {BlobPart} */ (project.model.bytes)]));
  const header = {
    format: 'siamese-web project', version: PROJECT_VERSION, saved_at: new Date().toISOString(),
    image_size: project.image_size, settings: project.settings, own_data: project.own_data, classes,
    model: project.model ? { file_name: project.model.file_name, bytes: project.model.bytes.length } : null,
  };
  const json = new TextEncoder().encode(JSON.stringify(header));
  const length = new Uint8Array(4);
  new DataView(length.buffer).setUint32(0, json.length, true);
  return new Uint8Array(await new Blob([MAGIC, length, json, ...parts]).arrayBuffer());
}

/** A project file's bytes as a Project; throws an Error saying why when they are not one this
 * page reads (nothing is changed then). @param {Uint8Array} bytes @returns {Project} */
export function decodeProject(bytes) {
  const magic = new TextEncoder().encode(MAGIC);
  if (bytes.length < magic.length || magic.some((byte, i) => bytes[i] !== byte)) {
    throw new Error('this is not a siamese-web project file');
  }
  const start = magic.length + 4;
  if (bytes.length < start) throw new Error('the project file is cut short');
  const length = new DataView(bytes.buffer, bytes.byteOffset + magic.length, 4).getUint32(0, true);
  if (bytes.length < start + length) throw new Error('the project file is cut short');
  let header;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(start, start + length)));
  } catch {
    throw new Error('the project file\'s header is damaged');
  }
  if (header?.format !== 'siamese-web project') throw new Error('this is not a siamese-web project file');
  if (header.version !== PROJECT_VERSION) {
    throw new Error(`it is a project of version ${header.version}, and this page reads version ${PROJECT_VERSION}` +
      `${header.version > PROJECT_VERSION ? ': open it with a newer siamese-web' : ''}`);
  }
  let offset = start + length;
  const take = (size) => {
    if (!Number.isSafeInteger(size) || size < 0 || offset + size > bytes.length) throw new Error('the project file is cut short');
    const part = bytes.slice(offset, offset + size);
    offset += size;
    return part;
  };
  if (!Array.isArray(header.classes) || !header.classes.every((c) => Array.isArray(c?.files))) {
    throw new Error('the project file\'s header is damaged');
  }
  const classes = header.classes.map(({ name, files }) => [String(name), files.map((f) => {
    const file = alreadyKept(new File([take(f.bytes)], String(f.name), { type: String(f.type ?? '') }));
    keepImageKey(file, typeof f.key === 'string' ? f.key : undefined);
    const text = (value) => (typeof value === 'string' ? value : undefined);
    return { file, captured: Boolean(f.captured), group: text(f.group), path: text(f.path) };
  })]);
  const model = header.model ? { file_name: String(header.model.file_name), bytes: take(header.model.bytes) } : null;
  if (offset !== bytes.length) throw new Error('the project file has bytes its header does not list');
  return { image_size: String(header.image_size), settings: header.settings ?? {}, own_data: Boolean(header.own_data), classes, model };
}

// ---- kept in this browser --------------------------------------------------------------

const transaction = objectStore('siamese-web-project', 'project');
const KEY = 'current';

/** Keeps the project (its model aside: the kept models hold it), or forgets it when it has no
 * images. @param {Omit<Project, 'model'>} project */
export function keepProject(project) {
  if (project.classes.length === 0) return transaction('readwrite', (store) => store.delete(KEY));
  const classes = project.classes.map(([name, files]) => [name, files.map((kept) => ({ ...kept, key: imageKeyOf(kept.file) }))]);
  return transaction('readwrite', (store) => store.put({ version: PROJECT_VERSION, ...project, classes }, KEY));
}

/** The project kept last, or null. @returns {Promise<Omit<Project, 'model'> | null>} */
export async function keptProject() {
  const kept = await transaction('readonly', (store) => store.get(KEY));
  if (kept?.version !== PROJECT_VERSION) return null;
  for (const [, files] of kept.classes) {
    for (const { file, key } of files) {
      alreadyKept(file);
      keepImageKey(file, key);
    }
  }
  return kept;
}

let persistAsked = false;

/** Asks the browser (once a page) to keep this site's storage under pressure; reports the storage used. */
export async function storageReport() {
  const storage = navigator.storage;
  if (!storage?.estimate) return null;
  let persisted = (await storage.persisted?.()) ?? false;
  if (!persisted && !persistAsked) {
    persistAsked = true;
    persisted = (await storage.persist?.()) ?? false;
  }
  const { usage = 0, quota = 0 } = await storage.estimate();
  return { persisted, usage, quota };
}
