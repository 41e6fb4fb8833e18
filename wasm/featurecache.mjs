// The page worker's feature cache: the frozen backbone's output for each project image,
// kept in IndexedDB next to the project so a reload computes nothing it computed before.
// Sits between wasm/worker.mjs's embed() and the engine: a hit replaces one embedViews().
//
// Database 'tinytune-features', store 'features': key `${imageId}|${backboneHash}|${config}`
// -> { key, imageId, data: Float32Array }. The config part holds the cut, the trainable
// blocks, the views and the augmentation seed, so features made under other settings are
// never mixed up. Project images never change after they are added (an edit is a new id),
// so the image id stands for its bytes. Where IndexedDB is missing or fails, every call
// quietly does nothing: the cache only saves time, it is never needed for correctness.
const DB = 'tinytune-features';
const STORE = 'features';
const MAX_BYTES = 1 << 20;

const req = (r) =>
  new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });

export class FeatureCache {
  static async open(name = DB) {
    try {
      if (!globalThis.indexedDB) return new FeatureCache(null);
      const open = indexedDB.open(name, 1);
      open.onupgradeneeded = () => open.result.createObjectStore(STORE, { keyPath: 'key' }).createIndex('imageId', 'imageId');
      return new FeatureCache(await req(open));
    } catch {
      return new FeatureCache(null);
    }
  }

  constructor(db) {
    this.db = db;
  }

  static key(imageId, backboneHash, config) {
    return `${imageId}|${backboneHash}|${config}`;
  }

  async get(key) {
    if (!this.db) return null;
    try {
      const rec = await req(this.db.transaction(STORE, 'readonly').objectStore(STORE).get(key));
      return rec?.data instanceof Float32Array ? rec.data : null;
    } catch {
      return null;
    }
  }

  async put(key, imageId, data) {
    // pooled features are ~30 KB an image; activations before trainable blocks stay under
    // ~0.5 MB; anything larger is cheaper to recompute than to keep
    if (!this.db || data.byteLength > MAX_BYTES) return;
    try {
      await req(this.db.transaction(STORE, 'readwrite').objectStore(STORE).put({ key, imageId, data }));
    } catch {
      /* full or gone: recomputed next time */
    }
  }

  /** Forgets every entry of these images (removed from the project). */
  async forget(imageIds) {
    if (!this.db || !imageIds.length) return;
    try {
      const tx = this.db.transaction(STORE, 'readwrite');
      const index = tx.objectStore(STORE).index('imageId');
      await Promise.all(
        imageIds.map((id) =>
          req(index.getAllKeys(IDBKeyRange.only(id))).then((keys) => {
            for (const k of keys) tx.objectStore(STORE).delete(k);
          }),
        ),
      );
    } catch {
      /* stale entries only cost space */
    }
  }
}
