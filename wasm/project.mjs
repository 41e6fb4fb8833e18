// The page's project: classes, their images (original file bytes), settings and the last
// trained classifier, kept in IndexedDB so a reload (even one in the middle of training)
// loses nothing, plus a one-file export/import container for moving a whole project.
//
// Nothing here touches the DOM. pack()/unpack() only need Blob and TextEncoder, so they run
// in Node too (tests/e2e/project.test.mjs); ProjectStore needs IndexedDB (page or worker).
//
// ---------------------------------------------------------------------------------------
// The project file (.ttproject), version 1
//
//   offset 0   8 bytes   magic, ASCII "TTPROJ01"
//   offset 8   4 bytes   H, the header's length in bytes, uint32 little-endian
//   offset 12  H bytes   the header: UTF-8 JSON (below)
//   offset 12+H          the data section: every blob the header mentions, concatenated
//
// Header:
//   { format: "tinytune-project", version: 1, created: ISO date, dataBytes: total size of the data section,
//     settings: {...the page's settings...},
//     classes: [{ id, name }],                                   (card order = label order)
//     images:  [{ id, classId, name, type, added, data: Ref, thumb: Ref | null }],
//     model:   { backbone, labels, saved, report, data: Ref } | null }   (a .ttm classifier)
//   Ref = { offset, length, type }: a byte range of the data section (offset from its start).
//
// No compression (images are already compressed; the classifier is small), no zip: a
// reader needs only the 12-byte prefix, JSON and slicing.
// ---------------------------------------------------------------------------------------

export const PROJECT_FORMAT = 'tinytune-project';
const MAGIC = 'TTPROJ01';
const PREFIX = 12;

export class ProjectFileError extends Error {
  constructor(message) {
    super(message);
    this.name = 'ProjectFileError';
  }
}

/**
 * One Blob holding the whole project. project: { settings, classes: [{id, name}],
 * images: [{id, classId, name, type, added, blob, thumb?}], model: {backbone, labels,
 * saved, report, bytes: Blob|Uint8Array} | null }. Blobs are referenced, not copied.
 */
export function pack(project) {
  const parts = [];
  let offset = 0;
  const ref = (blob, type) => {
    if (!blob) return null;
    const b = blob instanceof Blob ? blob : new Blob([blob]);
    parts.push(b);
    const r = { offset, length: b.size, type: type ?? b.type ?? '' };
    offset += b.size;
    return r;
  };
  const classIds = new Set(project.classes.map((c) => c.id));
  const header = {
    format: PROJECT_FORMAT, version: 1, created: new Date().toISOString(),
    settings: project.settings ?? {},
    classes: project.classes.map(({ id, name }) => ({ id, name })),
    images: project.images.filter((im) => classIds.has(im.classId)).map((im) => ({
      id: im.id, classId: im.classId, name: im.name, type: im.type ?? im.blob?.type ?? '', added: im.added ?? 0,
      data: ref(im.blob, im.type), thumb: ref(im.thumb),
    })),
    model: null,
  };
  if (project.model?.bytes) {
    const { backbone, labels, saved, report } = project.model;
    header.model = { backbone, labels, saved, report: report ?? null, data: ref(project.model.bytes, 'application/octet-stream') };
  }
  header.dataBytes = offset;
  const json = new TextEncoder().encode(JSON.stringify(header));
  const prefix = new Uint8Array(PREFIX);
  prefix.set(new TextEncoder().encode(MAGIC), 0);
  new DataView(prefix.buffer).setUint32(8, json.length, true);
  return new Blob([prefix, json, ...parts], { type: 'application/x-tinytune-project' });
}

/** Reads a project file back: the same shape pack() takes, with Blob slices of the file. */
export async function unpack(file) {
  const blob = file instanceof Blob ? file : new Blob([file]);
  const name = file?.name ? `'${file.name}'` : 'this file';
  if (blob.size < PREFIX) throw new ProjectFileError(`${name} is not a tinytune project (too short)`);
  const prefix = new Uint8Array(await blob.slice(0, PREFIX).arrayBuffer());
  if (new TextDecoder().decode(prefix.subarray(0, 8)) !== MAGIC) {
    throw new ProjectFileError(`${name} is not a tinytune project file (a .ttproject starts with ${MAGIC})`);
  }
  const hlen = new DataView(prefix.buffer).getUint32(8, true);
  if (PREFIX + hlen > blob.size) throw new ProjectFileError(`${name} is truncated: its header runs past the end of the file`);
  let header;
  try {
    header = JSON.parse(new TextDecoder().decode(await blob.slice(PREFIX, PREFIX + hlen).arrayBuffer()));
  } catch {
    throw new ProjectFileError(`${name} has a damaged header (not valid JSON)`);
  }
  if (header.format !== PROJECT_FORMAT) throw new ProjectFileError(`${name} is not a tinytune project (format '${header.format}')`);
  if (header.version !== 1) throw new ProjectFileError(`${name} is a version ${header.version} project; this page reads version 1`);
  const base = PREFIX + hlen;
  if (base + (header.dataBytes ?? 0) > blob.size) {
    throw new ProjectFileError(`${name} is truncated: ${blob.size - base} of ${header.dataBytes} data bytes present`);
  }
  const slice = (r) => {
    if (!r) return null;
    if (!(Number.isInteger(r.offset) && Number.isInteger(r.length) && r.offset >= 0 && r.length >= 0 && base + r.offset + r.length <= blob.size)) {
      throw new ProjectFileError(`${name} is damaged: a data range lies outside the file`);
    }
    return blob.slice(base + r.offset, base + r.offset + r.length, r.type ?? '');
  };
  if (!Array.isArray(header.classes) || !Array.isArray(header.images)) throw new ProjectFileError(`${name} has no class or image list`);
  return {
    settings: header.settings ?? {},
    classes: header.classes.map(({ id, name: n }) => ({ id: String(id), name: String(n) })),
    images: header.images.map((im) => ({ id: String(im.id), classId: String(im.classId), name: String(im.name ?? ''), type: im.type ?? '',
      added: im.added ?? 0, blob: slice(im.data), thumb: slice(im.thumb) })),
    model: header.model ? { backbone: header.model.backbone, labels: header.model.labels, saved: header.model.saved,
      report: header.model.report ?? null, bytes: slice(header.model.data) } : null,
  };
}

// ---------------------------------------------------------------------------------------
// IndexedDB: database 'tinytune', stores
//   meta   key 'project' -> { settings, classes: [{id, name}] }
//   images keyPath 'id'  -> { id, classId, name, type, size, added, blob, thumb }   (index classId)
//   model  key 'current' -> { backbone, labels, saved, report, bytes: Blob }
// Every change is written at once, so whatever the page shows is what a reload restores.
// ---------------------------------------------------------------------------------------

const DB_VERSION = 1;
const req = (r) => new Promise((resolve, reject) => { r.onsuccess = () => resolve(r.result); r.onerror = () => reject(r.error); });
const done = (tx) => new Promise((resolve, reject) => {
  tx.oncomplete = () => resolve();
  tx.onerror = () => reject(tx.error);
  tx.onabort = () => reject(tx.error ?? new Error('IndexedDB transaction aborted'));
});

export class ProjectStore {
  /** Opens (creating if needed) the project database. Rejects where IndexedDB is unavailable. */
  static async open(name = 'tinytune') {
    if (!globalThis.indexedDB) throw new Error('IndexedDB is not available in this browser');
    const open = indexedDB.open(name, DB_VERSION);
    open.onupgradeneeded = () => {
      const db = open.result;
      if (!db.objectStoreNames.contains('meta')) db.createObjectStore('meta');
      if (!db.objectStoreNames.contains('images')) db.createObjectStore('images', { keyPath: 'id' }).createIndex('classId', 'classId');
      if (!db.objectStoreNames.contains('model')) db.createObjectStore('model');
    };
    return new ProjectStore(await req(open));
  }

  constructor(db) { this.db = db; }

  async _tx(stores, mode, fn) {
    const tx = this.db.transaction(stores, mode);
    const result = fn(tx);
    await done(tx);
    return result instanceof IDBRequest ? result.result : result;
  }

  /** Everything stored: { meta, images (sorted by time added), model }. */
  async load() {
    const tx = this.db.transaction(['meta', 'images', 'model'], 'readonly');
    const [meta, images, model] = await Promise.all([
      req(tx.objectStore('meta').get('project')), req(tx.objectStore('images').getAll()), req(tx.objectStore('model').get('current')),
    ]);
    images.sort((a, b) => (a.added - b.added) || (a.id < b.id ? -1 : 1));
    return { meta: meta ?? null, images, model: model ?? null };
  }

  saveMeta(meta) { return this._tx(['meta'], 'readwrite', (tx) => { tx.objectStore('meta').put(meta, 'project'); }); }
  putImage(rec) { return this._tx(['images'], 'readwrite', (tx) => { tx.objectStore('images').put(rec); }); }
  getImage(id) { return this._tx(['images'], 'readonly', (tx) => tx.objectStore('images').get(id)); }
  deleteImage(id) { return this._tx(['images'], 'readwrite', (tx) => { tx.objectStore('images').delete(id); }); }

  deleteClassImages(classId) {
    return this._tx(['images'], 'readwrite', (tx) => {
      const cur = tx.objectStore('images').index('classId').openKeyCursor(IDBKeyRange.only(classId));
      cur.onsuccess = () => { const c = cur.result; if (c) { tx.objectStore('images').delete(c.primaryKey); c.continue(); } };
    });
  }

  putModel(rec) { return this._tx(['model'], 'readwrite', (tx) => { tx.objectStore('model').put(rec, 'current'); }); }
  getModel() { return this._tx(['model'], 'readonly', (tx) => tx.objectStore('model').get('current')); }
  deleteModel() { return this._tx(['model'], 'readwrite', (tx) => { tx.objectStore('model').delete('current'); }); }

  /** Replaces the whole project (an import, or a reset with an empty project) in one transaction. */
  replace({ settings, classes, images = [], model = null }) {
    return this._tx(['meta', 'images', 'model'], 'readwrite', (tx) => {
      tx.objectStore('images').clear();
      tx.objectStore('model').clear();
      tx.objectStore('meta').put({ settings, classes }, 'project');
      for (const im of images) tx.objectStore('images').put(im);
      if (model) tx.objectStore('model').put(model, 'current');
    });
  }
}
