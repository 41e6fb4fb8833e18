// Files in and out of the page: what a drop contains (folders included), small
// thumbnails (made in a worker that runs this same module), and downloads.

const THUMB = 96;

/** Reads every entry of a directory (readEntries returns them in chunks). */
function readAll(reader) {
  return new Promise((resolve, reject) => {
    const out = [];
    const step = () =>
      reader.readEntries((batch) => {
        if (!batch.length) resolve(out);
        else {
          out.push(...batch);
          step();
        }
      }, reject);
    step();
  });
}

const entryFile = (entry) => new Promise((resolve, reject) => entry.file(resolve, reject));

async function walk(entry, files) {
  if (entry.isFile) {
    if (!entry.name.startsWith('.')) files.push(await entryFile(entry));
  } else if (entry.isDirectory) {
    const children = await readAll(entry.createReader());
    children.sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true }));
    for (const c of children) await walk(c, files);
  }
}

/**
 * The files of a drop, grouped by top-level item: [{ folder: name | null, files: [File] }].
 * Folders are walked recursively; a folder's group also has `subfolders` ([{ folder, files }],
 * its direct subfolders, walked) and `loose` (how many of its files sit directly in it), which
 * tell a labelled test set (one subfolder per class) from a plain folder of images.
 * Synthetic drops (no entries) fall back to dataTransfer.files.
 */
export async function droppedGroups(dataTransfer) {
  const entries = [...(dataTransfer.items ?? [])]
    .filter((it) => it.kind === 'file')
    .map((it) => (it.webkitGetAsEntry ? it.webkitGetAsEntry() : null));
  if (!entries.length || entries.some((e) => !e)) {
    const files = [...(dataTransfer.files ?? [])];
    return files.length ? [{ folder: null, files }] : [];
  }
  const groups = [];
  const loose = [];
  for (const e of entries) {
    if (e.isDirectory) {
      const files = [],
        subfolders = [];
      let loose = 0;
      const children = await readAll(e.createReader());
      children.sort((x, y) => x.name.localeCompare(y.name, undefined, { numeric: true }));
      for (const c of children) {
        const n = files.length;
        await walk(c, files);
        if (c.isDirectory) subfolders.push({ folder: c.name, files: files.slice(n) });
        else loose += files.length - n;
      }
      groups.push({ folder: e.name, files, subfolders, loose });
    } else {
      await walk(e, loose);
    }
  }
  if (loose.length) groups.unshift({ folder: null, files: loose });
  return groups;
}

// Thumbnails are made off the page's main thread: a phone photo has 12 megapixels, and
// scaling one down there stalls the page for most of a second (bench/bigproject.mjs). This
// module is also the script of that worker (where it has no document): createImageBitmap
// decodes (EXIF orientation applied, as the page shows images), an OffscreenCanvas scales
// and encodes, one image at a time so at most one decoded photo is held. Where module
// workers or OffscreenCanvas are missing, the page does it itself.
async function thumbnailOf(blob, canvas) {
  let bmp;
  try {
    bmp = await createImageBitmap(blob);
  } catch {
    return null;
  }
  try {
    const s = Math.min(bmp.width, bmp.height);
    canvas.width = canvas.height = THUMB;
    const ctx = canvas.getContext('2d');
    ctx.imageSmoothingQuality = 'high';
    ctx.drawImage(bmp, (bmp.width - s) / 2, (bmp.height - s) / 2, s, s, 0, 0, THUMB, THUMB);
    return canvas.convertToBlob
      ? await canvas.convertToBlob({ type: 'image/jpeg', quality: 0.85 })
      : await new Promise((resolve) => canvas.toBlob(resolve, 'image/jpeg', 0.85));
  } finally {
    bmp.close();
  }
}

if (
  typeof document === 'undefined' &&
  typeof self !== 'undefined' &&
  typeof self.postMessage === 'function' &&
  typeof OffscreenCanvas === 'function'
) {
  let chain = Promise.resolve();
  self.onmessage = ({ data: { id, blob } }) => {
    chain = chain
      .then(() => thumbnailOf(blob, new OffscreenCanvas(THUMB, THUMB)).catch(() => null))
      .then((thumb) => self.postMessage({ id, thumb }));
  };
}

let thumbWorker; // undefined: not started yet; null: none (the page makes its own)
const waiting = new Map();
let lastId = 0;

function startThumbWorker() {
  try {
    if (typeof OffscreenCanvas !== 'function') return null;
    const w = new Worker(import.meta.url, { type: 'module' });
    w.onmessage = ({ data: { id, thumb } }) => {
      waiting.get(id)?.resolve(thumb);
      waiting.delete(id);
    };
    w.onerror = () => {
      // it could not start: the page makes the thumbnails waiting for it, and all later ones
      thumbWorker = null;
      for (const { blob, resolve } of waiting.values()) resolve(thumbnailOf(blob, document.createElement('canvas')));
      waiting.clear();
    };
    return w;
  } catch {
    return null;
  }
}

/** A small square JPEG thumbnail (cover-cropped, THUMB px) of an image file, or null when the browser cannot decode it. */
export function makeThumbnail(blob) {
  if (thumbWorker === undefined) thumbWorker = startThumbWorker();
  if (!thumbWorker) return thumbnailOf(blob, document.createElement('canvas'));
  return new Promise((resolve) => {
    const id = ++lastId;
    waiting.set(id, { blob, resolve });
    thumbWorker.postMessage({ id, blob });
  });
}

/** Offers bytes as a file download. */
export function download(data, filename, type = 'application/octet-stream') {
  const blob = data instanceof Blob ? data : new Blob([data], { type });
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  a.style.display = 'none';
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

/** A file name made of words, safe on every OS. */
export const safeName = (s) =>
  s
    .replace(/[^\p{L}\p{N}._-]+/gu, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 60) || 'tinytune';

export const formatBytes = (n) => (n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(0)} KB` : `${(n / 1048576).toFixed(1)} MB`);
