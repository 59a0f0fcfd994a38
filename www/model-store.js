// The last trained models, kept in the browser's IndexedDB so a reload loses nothing. Each entry
// holds the model file's bytes (as the worker wrote them) and its metadata for the list.

import { objectStore } from './idb.js';

/** Older models beyond this many are dropped when a new one is kept. */
export const KEPT_MODELS = 5;

const transaction = objectStore('siamese-web', 'models', { keyPath: 'id', autoIncrement: true });

/** Every kept model, newest first: {id, file_name, saved_at, info, bytes}. */
export async function listModels() {
  const all = await transaction('readonly', (store) => store.getAll());
  return all.sort((a, b) => b.id - a.id);
}

/** Keeps a model file, dropping the oldest beyond `KEPT_MODELS`; `replacing` the entry of that
 * id (the same model, changed since: a class enrolled) when given. Returns the entry's id. */
export async function keepModel({ file_name, info, bytes }, replacing = null) {
  const entry = { file_name, info, bytes, saved_at: new Date().toISOString() };
  const id = await transaction('readwrite', (store) =>
    (replacing == null ? store.add(entry) : store.put({ ...entry, id: replacing })));
  const all = await listModels();
  for (const old of all.slice(KEPT_MODELS)) await forgetModel(old.id);
  return id;
}

export function forgetModel(id) {
  return transaction('readwrite', (store) => store.delete(id));
}
