// One IndexedDB object store, opened for each transaction and closed after it, for the models and
// the project kept in this browser.

/**
 * A `transaction(mode, work)` on `store` of `database`: `work` gets the store and returns a
 * request, whose result the transaction resolves to once it completes.
 * @param {string} database @param {string} store @param {IDBObjectStoreParameters} [options]
 */
export function objectStore(database, store, options) {
  const open = () => new Promise((resolve, reject) => {
    const request = indexedDB.open(database, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(store, options);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
  /** @param {IDBTransactionMode} mode @param {(store: IDBObjectStore) => IDBRequest} work @returns {Promise<any>} */
  return async (mode, work) => {
    const db = await open();
    try {
      return await new Promise((resolve, reject) => {
        const tx = db.transaction(store, mode);
        const request = work(tx.objectStore(store));
        tx.oncomplete = () => resolve(request.result);
        tx.onerror = () => reject(tx.error);
        tx.onabort = () => reject(tx.error ?? new Error(`the browser refused to store the ${store}`));
      });
    } finally {
      db.close();
    }
  };
}
