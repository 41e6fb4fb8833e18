// The Classes panel: class cards, adding images (files, folders, drops, the webcam) and
// removing them. Each image is stored (IndexedDB, web/project.mjs) and handed to the engine
// worker through state.client ('addImage'); the page never sees its pixels as tensors.
// Imported by the Try it panel (the labelling loop adds to classes), the Files panel (a
// restored project) and web/app.mjs.
import { state, $, uid, plural, fmtCount, notify, saveMeta } from './state.mjs';
import { droppedGroups, makeThumbnail, formatBytes } from './files.mjs';
import { Recorder, cameraError, openStream } from './live.mjs';
import { updateTrainState } from './panel-train.mjs';
import { el } from './dom.mjs';

const MAX_FILE = 64 * 1024 * 1024;

// ---------------------------------------------------------------------------------------
// Classes and images

function uniqueName(base) {
  const names = new Set(state.classes.map((c) => c.name));
  if (!names.has(base)) return base;
  for (let i = 2; ; i++) if (!names.has(`${base} ${i}`)) return `${base} ${i}`;
}

function nextClassName() {
  const names = new Set(state.classes.map((c) => c.name));
  for (let i = state.classes.length + 1; ; i++) if (!names.has(`Class ${i}`)) return `Class ${i}`;
}

export function addClass(name = nextClassName(), { focus = false, id = uid() } = {}) {
  const cls = { id, name: uniqueName(name), images: [], el: null };
  state.classes.push(cls);
  cls.el = renderClassCard(cls);
  $('classes').insertBefore(cls.el, $('add-class'));
  saveMeta();
  updateTrainState();
  state.inbox?.render();
  if (focus) cls.el.querySelector('.class-name').select();
  return cls;
}

function renameClass(cls, input) {
  const name = input.value.trim().replace(/\s+/g, ' ');
  if (name === cls.name) {
    input.value = name;
    return;
  }
  if (!name) {
    notify('A class needs a name.', 'warn', { timeout: 6000 });
    input.value = cls.name;
    return;
  }
  if (state.classes.some((c) => c !== cls && c.name === name)) {
    notify(`There is already a class named '${name}'. Class names must be different.`, 'warn', { timeout: 8000 });
    input.value = cls.name;
    return;
  }
  cls.name = name;
  input.value = name;
  cls.el.setAttribute('aria-label', `Class ${name}`);
  saveMeta();
  updateTrainState();
  state.inbox?.render();
}

function deleteClass(cls) {
  state.classes = state.classes.filter((c) => c !== cls);
  for (const im of cls.images) if (im.url) URL.revokeObjectURL(im.url);
  cls.el.remove();
  state.store?.deleteClassImages(cls.id).catch(() => {});
  state.client?.call('removeClass', { classId: cls.id }).catch(() => {});
  saveMeta();
  updateTrainState();
  state.inbox?.render();
  notify(`Deleted class '${cls.name}'${cls.images.length ? ` and its ${plural(cls.images.length, 'image')}` : ''}.`, 'info');
}

export function renderClassCard(cls) {
  const input = el('input', {
    class: 'class-name',
    type: 'text',
    value: cls.name,
    'aria-label': 'Class name',
    maxlength: 60,
    spellcheck: 'false',
  });
  input.addEventListener('change', () => renameClass(cls, input));
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') input.blur();
    if (e.key === 'Escape') {
      input.value = cls.name;
      input.blur();
    }
  });
  const del = el('button', { class: 'icon-button delete', type: 'button', title: 'Delete this class', 'aria-label': `Delete class` }, '✕');
  let armed = null;
  del.addEventListener('click', () => {
    if (!cls.images.length || armed) {
      clearTimeout(armed);
      deleteClass(cls);
      return;
    }
    del.classList.add('armed');
    del.textContent = 'Delete?';
    armed = setTimeout(() => {
      armed = null;
      del.classList.remove('armed');
      del.textContent = '✕';
    }, 3000);
  });
  const fileInput = el('input', {
    type: 'file',
    accept: 'image/*',
    multiple: true,
    class: 'visually-hidden',
    'aria-label': 'Add images to this class',
  });
  fileInput.addEventListener('change', () => {
    addFiles(cls, [...fileInput.files]);
    fileInput.value = '';
  });
  const pick = el('label', { class: 'button small' }, 'Add images', fileInput);
  const cam = el(
    'button',
    { class: 'button small camera', type: 'button', hidden: !state.camera, onclick: () => openCamera(cls) },
    'Webcam',
  );
  const thumbs = el('ul', { class: 'thumbs', 'aria-label': 'Images' });
  const empty = el('p', { class: 'empty-hint' }, 'Drop images or a folder here');
  const zone = el('div', { class: 'dropzone', tabindex: 0, role: 'group', 'aria-label': 'Drop images here' }, empty, thumbs);
  zone.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      fileInput.click();
    }
  });
  bindDrop(zone, async (dt) => {
    const groups = await droppedGroups(dt);
    await addFiles(
      cls,
      groups.flatMap((g) => g.files),
    );
  });
  const card = el(
    'article',
    { class: 'class-card', dataset: { id: cls.id }, 'aria-label': `Class ${cls.name}` },
    el('header', {}, input, el('span', { class: 'count', 'aria-live': 'polite' }, '0 images'), del),
    zone,
    el('footer', {}, pick, cam),
  );
  return card;
}

export function updateCount(cls) {
  const ok = cls.images.filter((i) => i.status !== 'checking').length;
  const checking = cls.images.length - ok + (cls.queued ?? 0);
  cls.el.querySelector('.count').textContent = plural(ok, 'image') + (checking ? ` · checking ${checking}` : '');
  cls.el.classList.toggle('has-images', cls.images.length > 0);
  cls.el.dataset.count = String(ok);
}

export function renderThumb(cls, im) {
  const img = im.url
    ? el('img', { src: im.url, alt: im.name, width: 48, height: 48, loading: 'lazy', decoding: 'async' })
    : el('span', { class: 'no-thumb', title: im.name }, im.name.split('.').pop()?.slice(0, 4) || '?');
  const rm = el('button', { class: 'thumb-remove', type: 'button', 'aria-label': `Remove ${im.name}`, title: `Remove ${im.name}` }, '✕');
  rm.addEventListener('click', () => removeImage(cls, im));
  const li = el('li', { class: `thumb ${im.status}`, title: im.name, dataset: { id: im.id } }, img, rm);
  im.el = li;
  cls.el.querySelector('.thumbs').append(li);
}

export function removeImage(cls, im, { silent = false } = {}) {
  cls.images = cls.images.filter((x) => x !== im);
  im.el?.remove();
  if (im.url) URL.revokeObjectURL(im.url);
  state.store?.deleteImage(im.id).catch(() => {});
  state.client?.call('removeImage', { id: im.id }).catch(() => {});
  updateCount(cls);
  updateTrainState();
  if (!silent) $('features-status').textContent = '';
}

/**
 * Adds files to a class: a thumbnail is made, the original bytes are stored in IndexedDB
 * at once, and the engine checks that it can read the image; unreadable ones are removed
 * again and listed in one message with the engine's reason.
 */
export async function addFiles(cls, files) {
  if (!files.length) return;
  const room = Math.max(0, state.limits.images - projectImages());
  if (files.length > room) {
    const left = files.slice(room);
    const names =
      left
        .slice(0, 3)
        .map((f) => `'${f.webkitRelativePath || f.name}'`)
        .join(', ') + (left.length > 3 ? ` and ${left.length - 3} more` : '');
    notify(
      `This project is at the page's limit of ${fmtCount(state.limits.images)} images: ${plural(left.length, 'file')} (${names}) ${left.length === 1 ? 'was' : 'were'} not added to '${cls.name}'${room ? ` (${plural(room, 'other')} ${room === 1 ? 'was' : 'were'})` : ''}. ` +
        'Everything already in the project is kept and works. To add more, remove images, or export this project (.ttproject) and start another.',
      'warn',
      { topic: 'limit' },
    );
    files = files.slice(0, room);
    if (!files.length) return;
  }
  const skipped = [];
  let added = 0;
  const base = Date.now();
  cls.queued = (cls.queued ?? 0) + files.length; // shown as "checking" until each is done
  adding(files.length);
  updateCount(cls);
  try {
    for (const [i, file] of files.entries()) {
      if (await addFile(cls, file, i, base, skipped)) added++;
    }
  } finally {
    updateCount(cls);
  }
  updateTrainState();
  if (skipped.length) {
    notify(
      `Skipped ${plural(skipped.length, 'file')} that ${skipped.length === 1 ? 'is not a readable image' : 'are not readable images'}${added ? ` (${plural(added, 'other image')} added to '${cls.name}')` : ''}:`,
      'warn',
      { details: skipped },
    );
  }
  requestPersistence();
}

/** Images in the project, counting those still being added. */
const projectImages = () => state.classes.reduce((a, c) => a + c.images.length + (c.queued ?? 0), 0);

let inFlight = 0;
function adding(n) {
  inFlight += n;
  document.body.dataset.adding = String(inFlight);
}

/** One file of addFiles; true when it was added. */
async function addFile(cls, file, i, base, skipped) {
  let queued = true;
  const dequeue = () => {
    if (queued) {
      queued = false;
      cls.queued--;
      adding(-1);
    }
  };
  try {
    const name = file.webkitRelativePath || file.name || `image ${i + 1}`;
    if (file.size > MAX_FILE) {
      skipped.push(`${name}: ${formatBytes(file.size)} is too large for an image (limit ${formatBytes(MAX_FILE)})`);
      return false;
    }
    if (file.size === 0) {
      skipped.push(`${name}: the file is empty`);
      return false;
    }
    const thumb = await makeThumbnail(file);
    const im = { id: uid(), name, url: thumb ? URL.createObjectURL(thumb) : null, status: 'checking', blob: null };
    const rec = { id: im.id, classId: cls.id, name, type: file.type, size: file.size, added: base + i, blob: file, thumb };
    let blob = file;
    if (state.store) {
      try {
        await state.store.putImage(rec);
        blob = (await state.store.getImage(im.id))?.blob ?? file; // the stored copy, independent of the original file
      } catch (e) {
        storageFailed(e, name);
      }
    }
    if (!state.classes.includes(cls)) {
      state.store?.deleteImage(im.id).catch(() => {});
      return false;
    } // the class was deleted meanwhile
    im.blob = blob;
    cls.images.push(im);
    dequeue(); // now counted as a 'checking' thumbnail
    renderThumb(cls, im);
    updateCount(cls);
    const res = await state.client
      .call('addImage', { classId: cls.id, bytes: blob, id: im.id, name })
      .catch((e) => ({ ok: false, reason: e.message }));
    if (res.ok) {
      im.status = 'ok';
      im.el.classList.replace('checking', 'ok');
    } else {
      skipped.push(`${name}: ${res.reason}`);
      removeImage(cls, im, { silent: true });
    }
    updateCount(cls);
    return res.ok;
  } finally {
    dequeue();
  }
}

// Writes IndexedDB refused (the quota, most often), gathered into one message that grows
// as more fail, instead of one per image. What was stored before stays stored and usable.
const unsaved = { names: [], el: null };
function storageFailed(e, name) {
  const full = e?.name === 'QuotaExceededError' || /quota/i.test(e?.message ?? '');
  if (!unsaved.el?.isConnected) unsaved.names = [];
  unsaved.names.push(name);
  const n = unsaved.names.length;
  const list =
    unsaved.names
      .slice(0, 3)
      .map((x) => `'${x}'`)
      .join(', ') + (n > 3 ? ` and ${n - 3} more` : '');
  const text =
    `${full ? "This browser's storage for the page is full" : `This browser refused to store images (${e?.message})`}: ` +
    `${list} ${n === 1 ? 'is' : 'are'} used in this session but will be gone after a reload. Everything stored before is kept. ` +
    'To keep more, remove images or free space in the browser, or export the project (.ttproject).';
  if (unsaved.el?.isConnected) unsaved.el.querySelector('p').textContent = text;
  else unsaved.el = notify(text, 'warn', { topic: 'storage' });
}

let persistAsked = false;
function requestPersistence() {
  if (persistAsked || !navigator.storage?.persist) return;
  persistAsked = true;
  navigator.storage
    .persist()
    .then((granted) => {
      if (granted) $('chip-storage').title += ' (persistent storage granted)';
    })
    .catch(() => {});
}

/** Drag and drop onto an element; handler(dataTransfer). */
export function bindDrop(zone, handler) {
  let depth = 0;
  zone.addEventListener('dragenter', (e) => {
    e.preventDefault();
    depth++;
    zone.classList.add('dragover');
  });
  zone.addEventListener('dragover', (e) => {
    e.preventDefault();
    e.dataTransfer.dropEffect = 'copy';
  });
  zone.addEventListener('dragleave', () => {
    if (--depth <= 0) {
      depth = 0;
      zone.classList.remove('dragover');
    }
  });
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    e.stopPropagation();
    depth = 0;
    zone.classList.remove('dragover');
    handler(e.dataTransfer).catch((err) => notify(`Could not read the dropped files: ${err.message}`, 'error'));
  });
}

// ---------------------------------------------------------------------------------------
// Webcam

export async function detectCamera() {
  try {
    if (!navigator.mediaDevices?.getUserMedia || !navigator.mediaDevices.enumerateDevices) return false;
    const devices = await navigator.mediaDevices.enumerateDevices();
    return devices.some((d) => d.kind === 'videoinput');
  } catch {
    return false;
  }
}

let camera = null;
let recorder = null;
async function openCamera(cls) {
  const dlg = $('camera-dialog');
  $('camera-class').textContent = cls.name;
  try {
    const stream = await openStream();
    camera = { stream, cls, n: 0, chain: Promise.resolve() };
    $('camera-video').srcObject = stream;
    $('camera-count').textContent = 'Hold the button (or the space bar on it) to record: every frame joins the class.';
    dlg.showModal();
  } catch (e) {
    notify(cameraError(e), 'error', { topic: 'camera' });
  }
}

export function closeCamera() {
  recorder?.stop();
  camera?.stream.getTracks().forEach((t) => t.stop());
  $('camera-video').srcObject = null;
  camera = null;
  if ($('camera-dialog').open) $('camera-dialog').close();
}

/** One recorded frame (a promise of a JPEG File): joins the class in recording order. */
function recordedFrame(file) {
  if (!camera) return;
  const cam = camera;
  cam.n++;
  $('camera-count').textContent = `${plural(cam.n, 'photo')} taken`;
  adding(1); // busy from the grab on, not only once the JPEG exists
  cam.chain = cam.chain.then(async () => {
    try {
      const f = await file;
      if (f) await addFiles(cam.cls, [f]);
    } finally {
      adding(-1);
    }
  });
}

/** The camera dialog's recorder (web/live.mjs): each frame it grabs joins the class. Made once, by bindUi. */
export function bindRecorder() {
  recorder = new Recorder({
    video: $('camera-video'),
    button: $('camera-capture'),
    fps: () => $('camera-fps').value,
    onFrame: recordedFrame,
  });
}
