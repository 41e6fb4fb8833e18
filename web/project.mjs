// The page's project: classes, their images (original file bytes), settings and the last
// trained classifier, kept in IndexedDB so a reload (even one in the middle of training)
// loses nothing, plus a one-file export/import container for moving a whole project.
//
// Nothing here touches the DOM. pack()/unpack() only need Blob and TextEncoder, so they run
// in Node too (tests/e2e/project.test.mjs); ProjectStore needs IndexedDB (page or worker).
//
// ---------------------------------------------------------------------------------------
// The project file (.ttproject), version 2
//
//   offset 0   8 bytes   magic, ASCII "TTPROJ02"
//   offset 8   4 bytes   H, the header's length in bytes, uint32 little-endian
//   offset 12  4 bytes   CRC-32 of the header's H bytes, uint32 little-endian
//   offset 16  H bytes   the header: UTF-8 JSON (below)
//   offset 16+H          the data section: every blob the header mentions, concatenated
//
// Header:
//   { format: "tinytune-project", version: 2, created: ISO date,
//     dataBytes: size of the data section, dataCrc32: CRC-32 of the data section,
//     settings: {...the page's settings...},
//     classes: [{ id, name }],                                   (card order = label order)
//     images:  [{ id, classId, name, type, added, data: Ref, thumb: Ref | null }],
//     model:   { backbone, labels, saved, report, data: Ref } | null }   (a .ttm classifier)
//   Ref = { offset, length, type }: a byte range of the data section (offset from its start).
//
// Version 1 (magic "TTPROJ01", a 12-byte prefix without the CRC, no dataCrc32; written by
// the first release) is still read: a project saved then opens unchanged
// (tests/fixtures/project/, tests/project_file.test.mjs). The checksums turn a flipped
// byte anywhere into a clear error instead of a silently different image or model.
//
// A file is untrusted: unpack() checks every count, size, range, nesting depth and
// checksum against the limits below before the page stores anything, and fails with a
// ProjectFileError naming the problem, so an import either replaces the project whole or
// leaves it untouched.
//
// No compression (images are already compressed; the classifier is small), no zip: a
// reader needs only the prefix, JSON and slicing.
// ---------------------------------------------------------------------------------------

export const PROJECT_FORMAT = 'tinytune-project';
export const PROJECT_VERSION = 2;
const MAGIC = { 1: 'TTPROJ01', 2: 'TTPROJ02' };
const PREFIX = { 1: 12, 2: 16 };
const MiB = 1024 * 1024;
/** What a project may hold; a file beyond these is refused before anything is stored. */
export const PROJECT_LIMITS = Object.freeze({
  headerBytes: 64 * MiB,
  images: 20000,
  classes: 1000,
  depth: 32,
  imageBytes: 64 * MiB,
  thumbBytes: 4 * MiB,
  modelBytes: 256 * MiB,
});
// The saved-model header the engine reads (src/savefile.c): 'TTMODEL\0', uint32 version.
const TTM_MAGIC = 'TTMODEL\0',
  TTM_VERSION = 1;

export class ProjectFileError extends Error {
  constructor(message) {
    super(message);
    this.name = 'ProjectFileError';
  }
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (IEEE, as zip and PNG) of bytes, continuing from crc (0 to start). */
export function crc32(bytes, crc = 0) {
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

// CRC-32 of a Blob, read in slices so a large project is never held in memory twice.
async function blobCrc32(blob) {
  let crc = 0;
  for (let at = 0; at < blob.size; at += 8 * MiB) crc = crc32(new Uint8Array(await blob.slice(at, at + 8 * MiB).arrayBuffer()), crc);
  return crc;
}

const fmt = (n) => String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ' ');

/**
 * One Blob holding the whole project. project: { settings, classes: [{id, name}],
 * images: [{id, classId, name, type, added, blob, thumb?}], model: {backbone, labels,
 * saved, report, bytes: Blob|Uint8Array} | null }. Blobs are referenced, not copied, but
 * read once for the checksum (hence async).
 */
export async function pack(project) {
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
    format: PROJECT_FORMAT,
    version: PROJECT_VERSION,
    created: new Date().toISOString(),
    settings: project.settings ?? {},
    classes: project.classes.map(({ id, name }) => ({ id, name })),
    images: project.images
      .filter((im) => classIds.has(im.classId))
      .map((im) => ({
        id: im.id,
        classId: im.classId,
        name: im.name,
        type: im.type ?? im.blob?.type ?? '',
        added: im.added ?? 0,
        data: ref(im.blob, im.type),
        thumb: ref(im.thumb),
      })),
    model: null,
  };
  if (project.model?.bytes) {
    const { backbone, labels, saved, report } = project.model;
    header.model = { backbone, labels, saved, report: report ?? null, data: ref(project.model.bytes, 'application/octet-stream') };
  }
  header.dataBytes = offset;
  header.dataCrc32 = await blobCrc32(new Blob(parts));
  const json = new TextEncoder().encode(JSON.stringify(header));
  const prefix = new Uint8Array(PREFIX[2]);
  prefix.set(new TextEncoder().encode(MAGIC[2]), 0);
  new DataView(prefix.buffer).setUint32(8, json.length, true);
  new DataView(prefix.buffer).setUint32(12, crc32(json), true);
  return new Blob([prefix, json, ...parts], { type: 'application/x-tinytune-project' });
}

// The deepest nesting of arrays and objects in JSON text (strings skipped), without
// parsing it: a header nested 100,000 deep is refused before JSON.parse or anything after
// it (structured cloning into IndexedDB, JSON.stringify on export) recurses that deep.
function jsonDepth(text, limit) {
  let depth = 0,
    max = 0,
    inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (inString) {
      if (ch === 92)
        i++; // backslash: skip the escaped character
      else if (ch === 34) inString = false;
    } else if (ch === 34) inString = true;
    else if (ch === 123 || ch === 91) {
      if (++depth > max) {
        max = depth;
        if (max > limit) return max;
      }
    } else if (ch === 125 || ch === 93) depth--;
  }
  return max;
}

/** Reads a project file back: the same shape pack() takes, with Blob slices of the file. */
export async function unpack(file) {
  const blob = file instanceof Blob ? file : new Blob([file]);
  const name = file?.name ? `'${file.name}'` : 'this file';
  const refuse = (why) => {
    throw new ProjectFileError(`${name} ${why}`);
  };
  if (blob.size < PREFIX[1]) refuse('is not a tinytune project (too short)');
  const head = new Uint8Array(await blob.slice(0, PREFIX[2]).arrayBuffer());
  const magic = new TextDecoder().decode(head.subarray(0, 8));
  const fileVersion = magic === MAGIC[1] ? 1 : magic === MAGIC[2] ? 2 : 0;
  if (!fileVersion) {
    if (/^TTPROJ\d\d$/.test(magic))
      refuse(`is a version ${Number(magic.slice(6))} project file; this page reads versions 1 and 2 (it was made by a newer tinytune)`);
    refuse(`is not a tinytune project file (a .ttproject starts with ${MAGIC[2]})`);
  }
  const prefixLen = PREFIX[fileVersion];
  if (blob.size < prefixLen) refuse('is not a tinytune project (too short)');
  const view = new DataView(head.buffer);
  const hlen = view.getUint32(8, true);
  if (hlen > PROJECT_LIMITS.headerBytes)
    refuse(`is damaged: its header claims ${fmt(hlen)} bytes, more than the limit of ${fmt(PROJECT_LIMITS.headerBytes)}`);
  if (prefixLen + hlen > blob.size) refuse('is truncated: its header runs past the end of the file');
  const headerBytes = new Uint8Array(await blob.slice(prefixLen, prefixLen + hlen).arrayBuffer());
  if (fileVersion >= 2 && crc32(headerBytes) !== view.getUint32(12, true)) {
    refuse('is damaged: its header does not match its checksum (a changed byte?)');
  }
  let text;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    refuse('has a damaged header (not valid UTF-8)');
  }
  const depth = jsonDepth(text, PROJECT_LIMITS.depth);
  if (depth > PROJECT_LIMITS.depth) refuse(`has a damaged header: JSON nested more than ${PROJECT_LIMITS.depth} levels deep`);
  let header;
  try {
    header = JSON.parse(text);
  } catch {
    refuse('has a damaged header (not valid JSON)');
  }
  if (!header || typeof header !== 'object' || Array.isArray(header)) refuse('has a damaged header (not a JSON object)');
  if (header.format !== PROJECT_FORMAT) refuse(`is not a tinytune project (format '${header.format}')`);
  if (header.version !== fileVersion) {
    if (Number.isInteger(header.version) && header.version > PROJECT_VERSION)
      refuse(`is a version ${header.version} project; this page reads versions 1 and 2 (it was made by a newer tinytune)`);
    refuse(`is damaged: its header says version ${JSON.stringify(header.version)} in a version ${fileVersion} file`);
  }
  const { classes, images } = header;
  if (!Array.isArray(classes) || !Array.isArray(images)) refuse('has no class or image list');
  if (classes.length > PROJECT_LIMITS.classes)
    refuse(`declares ${fmt(classes.length)} classes; the limit is ${fmt(PROJECT_LIMITS.classes)}`);
  if (images.length > PROJECT_LIMITS.images) refuse(`declares ${fmt(images.length)} images; the limit is ${fmt(PROJECT_LIMITS.images)}`);
  const dataBytes = header.dataBytes ?? 0;
  if (!Number.isSafeInteger(dataBytes) || dataBytes < 0)
    refuse(`is damaged: its data size ${JSON.stringify(header.dataBytes)} is not a byte count`);
  const base = prefixLen + hlen;
  if (base + dataBytes > blob.size) refuse(`is truncated: ${blob.size - base} of ${dataBytes} data bytes present`);
  if (base + dataBytes < blob.size && fileVersion >= 2) refuse(`is damaged: ${fmt(blob.size - base - dataBytes)} bytes follow its data`);

  const isObj = (v) => v && typeof v === 'object' && !Array.isArray(v);
  const slice = (r, what, limit) => {
    if (r === null || r === undefined) return null;
    if (!isObj(r) || !Number.isSafeInteger(r.offset) || !Number.isSafeInteger(r.length) || r.offset < 0 || r.length < 0) {
      refuse(`is damaged: ${what} has no valid byte range`);
    }
    if (r.length > limit) refuse(`is refused: ${what} is ${fmt(r.length)} bytes; the limit is ${fmt(limit)} (${limit / MiB} MiB)`);
    if (r.offset + r.length > dataBytes) refuse(`is damaged: ${what} lies outside the file's data`);
    return blob.slice(base + r.offset, base + r.offset + r.length, typeof r.type === 'string' ? r.type : '');
  };
  const str = (v, what, max = 1000) => {
    if (typeof v === 'number') v = String(v);
    if (typeof v !== 'string' || v.length > max) refuse(`is damaged: ${what} is not a name`);
    return v;
  };
  const out = {
    settings: isObj(header.settings) ? header.settings : {},
    classes: classes.map((c, i) => {
      if (!isObj(c)) refuse(`is damaged: class ${i + 1} is not an object`);
      return { id: str(c.id, `the id of class ${i + 1}`), name: str(c.name, `the name of class ${i + 1}`) };
    }),
    images: images.map((im, i) => {
      if (!isObj(im)) refuse(`is damaged: image ${i + 1} is not an object`);
      const what = `image ${i + 1} ('${String(im.name ?? '').slice(0, 80)}')`;
      return {
        id: str(im.id, `the id of ${what}`),
        classId: str(im.classId, `the class of ${what}`),
        name: str(im.name ?? '', `the name of ${what}`, 4096),
        type: typeof im.type === 'string' ? im.type.slice(0, 100) : '',
        added: Number.isFinite(im.added) ? im.added : 0,
        blob: slice(im.data, what, PROJECT_LIMITS.imageBytes),
        thumb: slice(im.thumb, `the thumbnail of ${what}`, PROJECT_LIMITS.thumbBytes),
      };
    }),
    model: null,
  };
  if (out.images.some((im) => !im.blob)) refuse(`is damaged: image ${out.images.findIndex((im) => !im.blob) + 1} has no data`);
  if (header.model) {
    const m = header.model;
    if (!isObj(m)) refuse('is damaged: its model entry is not an object');
    if (!Array.isArray(m.labels) || m.labels.some((l) => typeof l !== 'string'))
      refuse("is damaged: its model's labels are not a list of names");
    const bytes = slice(m.data, 'its model', PROJECT_LIMITS.modelBytes);
    if (!bytes) refuse('is damaged: its model has no data');
    out.model = {
      backbone: typeof m.backbone === 'string' ? m.backbone : null,
      labels: m.labels.slice(),
      saved: Number.isFinite(m.saved) ? m.saved : 0,
      report: isObj(m.report) ? m.report : null,
      bytes,
    };
  }
  // Everything checks out; the data's checksum last, as it reads the whole file.
  if (fileVersion >= 2 && (await blobCrc32(blob.slice(base, base + dataBytes))) !== header.dataCrc32) {
    refuse('is damaged: its data does not match its checksum (a changed byte, or an incomplete copy?)');
  }
  if (out.model) {
    const h = new Uint8Array(await out.model.bytes.slice(0, 12).arrayBuffer());
    const v = h.length === 12 ? new DataView(h.buffer).getUint32(8, true) : -1;
    if (new TextDecoder().decode(h.subarray(0, 8)) !== TTM_MAGIC) refuse('is damaged: its model is not a tinytune model file');
    if (v > TTM_VERSION)
      refuse(`holds a model saved by a newer tinytune (model file version ${v}; this page reads version ${TTM_VERSION})`);
    if (v !== TTM_VERSION) refuse(`is damaged: its model has file version ${v}`);
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// IndexedDB: database 'tinytune', schema version 2, stores
//   meta   key 'project' -> { settings, classes: [{id, name}] }
//   images keyPath 'id'  -> { id, classId, name, type, size, added, blob, thumb }   (indexes classId, added)
//   model  key 'current' -> { backbone, labels, saved, report, bytes: Blob }
// Every change is written at once, so whatever the page shows is what a reload restores.
//
// Upgrades. A browser keeps the database of whatever page version last opened it; a newer
// page opens it at its own version and onupgradeneeded runs each step from the stored
// version up, in order, inside one versionchange transaction (so an upgrade cut short
// leaves the old version intact). A step never drops what an older page wrote. The
// database the version 1 page wrote is kept as a fixture (tests/fixtures/idb/v1.json) and
// tests/e2e/upgrade.test.mjs opens it with this page. A new version: add a step here, and
// dump a fixture of the version before it.
//   1: the three stores, images indexed by class.
//   2: images indexed by the time added (the page restores them in that order, reading
//      them in batches rather than all at once); every image record has its size in bytes,
//      which the page's project limits count (version 1 imports stored none).
// ---------------------------------------------------------------------------------------

export const DB_VERSION = 2;
const UPGRADES = {
  1: (db) => {
    db.createObjectStore('meta');
    db.createObjectStore('images', { keyPath: 'id' }).createIndex('classId', 'classId');
    db.createObjectStore('model');
  },
  2: (db, tx) => {
    const images = tx.objectStore('images');
    images.createIndex('added', 'added');
    const cur = images.openCursor();
    cur.onsuccess = () => {
      const c = cur.result;
      if (!c) return;
      const rec = c.value;
      const size = rec.blob instanceof Blob ? rec.blob.size : 0;
      if (rec.size !== size) c.update({ ...rec, size });
      c.continue();
    };
  },
};
const req = (r) =>
  new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
const done = (tx) =>
  new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error('IndexedDB transaction aborted'));
  });

export class ProjectStore {
  /** Opens (creating or upgrading if needed) the project database. Rejects where IndexedDB is unavailable. */
  static async open(name = 'tinytune', version = DB_VERSION) {
    if (!globalThis.indexedDB) throw new Error('IndexedDB is not available in this browser');
    const open = indexedDB.open(name, version);
    // Another tab with an older page holds the database open at its version: say so
    // rather than wait forever for it to close.
    const blocked = new Promise((_, reject) => {
      open.onblocked = () => reject(new Error('another tab has the project open with an older version of this page; close it and reload'));
    });
    open.onupgradeneeded = (e) => {
      for (let v = e.oldVersion + 1; v <= version; v++) UPGRADES[v](open.result, open.transaction);
    };
    return new ProjectStore(await Promise.race([req(open), blocked]));
  }

  constructor(db) {
    this.db = db;
  }

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
      req(tx.objectStore('meta').get('project')),
      req(tx.objectStore('images').getAll()),
      req(tx.objectStore('model').get('current')),
    ]);
    images.sort((a, b) => a.added - b.added || (a.id < b.id ? -1 : 1));
    return { meta: meta ?? null, images, model: model ?? null };
  }

  saveMeta(meta) {
    return this._tx(['meta'], 'readwrite', (tx) => {
      tx.objectStore('meta').put(meta, 'project');
    });
  }
  putImage(rec) {
    return this._tx(['images'], 'readwrite', (tx) => {
      tx.objectStore('images').put(rec);
    });
  }
  getImage(id) {
    return this._tx(['images'], 'readonly', (tx) => tx.objectStore('images').get(id));
  }
  deleteImage(id) {
    return this._tx(['images'], 'readwrite', (tx) => {
      tx.objectStore('images').delete(id);
    });
  }

  deleteClassImages(classId) {
    return this._tx(['images'], 'readwrite', (tx) => {
      const cur = tx.objectStore('images').index('classId').openKeyCursor(IDBKeyRange.only(classId));
      cur.onsuccess = () => {
        const c = cur.result;
        if (c) {
          tx.objectStore('images').delete(c.primaryKey);
          c.continue();
        }
      };
    });
  }

  putModel(rec) {
    return this._tx(['model'], 'readwrite', (tx) => {
      tx.objectStore('model').put(rec, 'current');
    });
  }
  getModel() {
    return this._tx(['model'], 'readonly', (tx) => tx.objectStore('model').get('current'));
  }
  deleteModel() {
    return this._tx(['model'], 'readwrite', (tx) => {
      tx.objectStore('model').delete('current');
    });
  }

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
