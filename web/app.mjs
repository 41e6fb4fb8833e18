// tinytune's page: classes of images, training in a worker, predictions, model files and a
// project that survives reloads. Plain DOM; the engine runs in wasm/worker.mjs.
import { hasSimd } from '../wasm/module.mjs';
import { ProjectStore, pack, unpack } from './project.mjs';
import { EngineClient } from './client.mjs';
import { droppedGroups, makeThumbnail, download, safeName, formatBytes } from './files.mjs';
import { drawCurves, renderPerClass, renderConfusion, renderPredictions } from './charts.mjs';
import { LivePreview, Recorder, cameraError, openStream } from './live.mjs';
import { BatchTable, Inbox, topOf } from './batch.mjs';
import { el } from './dom.mjs';
import { zip } from './zip.mjs';

const $ = (id) => document.getElementById(id);
const MAX_FILE = 64 * 1024 * 1024;
const DEFAULTS = { modelId: null, cut: '', blocks: 'auto', epochs: 30, learningRate: null, augment: true, views: 4 };
// The largest project the page takes: 3,000 images, where the default settings' features
// (172 KB an image) reach the worker's budget, featureBytes (wasm/worker.mjs overBudget,
// which refuses heavier settings by itself). bench/bigproject.mjs ran 2,000 phone photos.
// Beyond it, an add or an import is refused with a message, before memory runs out.
// The tests lower these (window.tinytune.limits).
const LIMITS = { images: 3000, featureBytes: 512 * 1024 * 1024 };

const state = {
  store: null, // ProjectStore, or null where the browser gives no IndexedDB
  client: null, // EngineClient (the worker)
  env: null, // { simd, threads }
  zoo: [], // models/index.json entries
  model: null, // the worker's model info
  settings: { ...DEFAULTS },
  limits: { ...LIMITS },
  classes: [], // [{ id, name, images: [{ id, name, url, status }], el }]
  training: false,
  trained: null, // { labels, report, backbone, source }
  loadingModel: null,
  swControlled: false,
};
window.tinytune = state; // for the curious (and the console)

const uid = () => (crypto.randomUUID ? crypto.randomUUID() : `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`);
const plural = (n, w) => `${n} ${w}${n === 1 ? '' : w.endsWith('s') ? 'es' : 's'}`;
const pct = (v) => (v === null || v === undefined || !Number.isFinite(v) ? '–' : `${(v * 100).toFixed(v === 1 || v === 0 ? 0 : 1)}%`);
const fmtTime = (s) =>
  !Number.isFinite(s)
    ? '…'
    : s < 10
      ? `${Math.max(0, s).toFixed(1)} s`
      : s < 60
        ? `${Math.round(s)} s`
        : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;

// ---------------------------------------------------------------------------------------
// Messages

/** Shows a message; kind: info | ok | warn | error. Errors and warnings stay until closed. */
function notify(text, kind = 'info', { details = null, timeout, topic = null } = {}) {
  const box = $('messages');
  const item = el('div', { class: `msg ${kind}`, role: kind === 'error' ? 'alert' : null, dataset: topic ? { topic } : {} });
  const body = el('div', { class: 'msg-body' }, el('p', {}, text));
  if (details?.length) body.append(el('ul', {}, ...details.map((d) => el('li', {}, d))));
  const close = el('button', { class: 'msg-close', type: 'button', 'aria-label': 'Dismiss message', onclick: () => item.remove() }, '×');
  item.append(body, close);
  box.append(item);
  while (box.children.length > 6) box.firstElementChild.remove();
  const t = timeout ?? (kind === 'info' || kind === 'ok' ? 8000 : 0);
  if (t) setTimeout(() => item.remove(), t);
  return item;
}

/** Removes the messages about one topic (say, earlier refusals to train once training starts). */
function clearMessages(topic) {
  for (const m of $('messages').querySelectorAll(`.msg[data-topic="${topic}"]`)) m.remove();
}

// ---------------------------------------------------------------------------------------
// Persistence

function saveMeta() {
  if (!state.store) return;
  const meta = { settings: state.settings, classes: state.classes.map(({ id, name }) => ({ id, name })) };
  state.store.saveMeta(meta).catch((e) => notify(`Could not save the project in this browser: ${e.message}`, 'error'));
}

async function storeModel(bytes, labels, report) {
  state.sessionModel = bytes instanceof Uint8Array ? bytes.slice() : null; // for an engine restart without IndexedDB
  if (!state.store) return;
  const rec = { backbone: state.model.id, labels, saved: Date.now(), report: slimReport(report), bytes: new Blob([bytes]) };
  await state.store.putModel(rec).catch((e) => notify(`Could not keep the model in this browser: ${e.message}`, 'warn'));
}

const slimReport = (r) =>
  r
    ? {
        history: r.history ?? [],
        confusion: r.confusion ?? null,
        perClassAccuracy: r.perClassAccuracy ?? null,
        validationAccuracy: r.validationAccuracy ?? null,
        bestEpoch: r.bestEpoch ?? null,
        nVal: r.nVal ?? null,
        nTrain: r.nTrain ?? null,
        cancelled: !!r.cancelled,
        stoppedEarly: !!r.stoppedEarly,
        seconds: r.seconds ?? null,
      }
    : null;

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

function addClass(name = nextClassName(), { focus = false, id = uid() } = {}) {
  const cls = { id, name: uniqueName(name), images: [], el: null };
  state.classes.push(cls);
  cls.el = renderClassCard(cls);
  $('classes').insertBefore(cls.el, $('add-class'));
  saveMeta();
  updateTrainState();
  inbox?.render();
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
  inbox?.render();
}

function deleteClass(cls) {
  state.classes = state.classes.filter((c) => c !== cls);
  for (const im of cls.images) if (im.url) URL.revokeObjectURL(im.url);
  cls.el.remove();
  state.store?.deleteClassImages(cls.id).catch(() => {});
  state.client?.call('removeClass', { classId: cls.id }).catch(() => {});
  saveMeta();
  updateTrainState();
  inbox?.render();
  notify(`Deleted class '${cls.name}'${cls.images.length ? ` and its ${plural(cls.images.length, 'image')}` : ''}.`, 'info');
}

function renderClassCard(cls) {
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

function updateCount(cls) {
  const ok = cls.images.filter((i) => i.status !== 'checking').length;
  const checking = cls.images.length - ok + (cls.queued ?? 0);
  cls.el.querySelector('.count').textContent = plural(ok, 'image') + (checking ? ` · checking ${checking}` : '');
  cls.el.classList.toggle('has-images', cls.images.length > 0);
  cls.el.dataset.count = String(ok);
}

function renderThumb(cls, im) {
  const img = im.url
    ? el('img', { src: im.url, alt: im.name, width: 48, height: 48, loading: 'lazy', decoding: 'async' })
    : el('span', { class: 'no-thumb', title: im.name }, im.name.split('.').pop()?.slice(0, 4) || '?');
  const rm = el('button', { class: 'thumb-remove', type: 'button', 'aria-label': `Remove ${im.name}`, title: `Remove ${im.name}` }, '✕');
  rm.addEventListener('click', () => removeImage(cls, im));
  const li = el('li', { class: `thumb ${im.status}`, title: im.name, dataset: { id: im.id } }, img, rm);
  im.el = li;
  cls.el.querySelector('.thumbs').append(li);
}

function removeImage(cls, im, { silent = false } = {}) {
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
async function addFiles(cls, files) {
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
const fmtCount = (n) => String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',');

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
function bindDrop(zone, handler) {
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

async function detectCamera() {
  try {
    if (!navigator.mediaDevices?.getUserMedia || !navigator.mediaDevices.enumerateDevices) return false;
    const devices = await navigator.mediaDevices.enumerateDevices();
    return devices.some((d) => d.kind === 'videoinput');
  } catch {
    return false;
  }
}

let camera = null;
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

function closeCamera() {
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

let recorder = null;
let live = null;
let inbox = null;

/** The labelling loop's side of the app: its images join a class as if dropped on it. */
function makeInbox() {
  return new Inbox($('inbox'), {
    predict: (blob) => state.client.call('predict', { bytes: blob, topk: 1000 }),
    classes: () => state.classes,
    accept: async (name, file) => {
      const cls = state.classes.find((c) => c.name === name);
      if (!cls) {
        notify(`There is no class '${name}' any more.`, 'warn');
        return;
      }
      await addFiles(cls, [file]);
    },
    notify,
    thumbnail: makeThumbnail,
    uid,
  });
}

// ---------------------------------------------------------------------------------------
// Model selection

async function loadZoo() {
  const r = await fetch(new URL('../models/index.json', import.meta.url));
  if (!r.ok) throw new Error(`the model zoo (models/index.json) is missing (${r.status}); build it with 'make all'`);
  return (await r.json()).models;
}

const modelBase = (entry) => new URL(`../models/${entry.model}`, import.meta.url);

function renderModelCard(entry, info) {
  const c = info?.card ?? entry.card ?? {};
  const rows = [
    ['Architecture', c.architecture],
    ['Input', c.input ? `${c.input.width}×${c.input.height} RGB, values ${c.input.range?.join('–')}, ${c.input.resize}` : null],
    ['Feature', c.feature ? `${c.feature.size}-d pooled feature (${c.feature.layer?.split('/').pop()})` : null],
    ['Weights', c.weights ? `${(c.weights.parameters / 1e6).toFixed(1)} M parameters, ${c.weightsEncoding ?? ''}` : null],
    ['Its original answers (not used here)', c.labels?.join(', ')],
    ['Source', c.source],
    ['License', c.license ? `${c.license}${c.licenseHolder ? `, ${c.licenseHolder}` : ''}` : null],
    ['Note', c.provenance ?? c.note],
  ].filter(([, v]) => v);
  $('model-card-name').textContent = plainName(c.name ?? entry.name ?? entry.id);
  $('model-card-plain').textContent = plainCard(c);
  $('model-card-body').replaceChildren(...rows.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
}

const plainName = (name) => name.split(/[,(]/)[0].trim();

/** The model card in plain words: what the backbone learnt, and what tinytune uses of it. */
function plainCard(c) {
  const mb = c.weights?.bytes ? ` It is a ${formatBytes(c.weights.bytes)} download, kept for offline use.` : '';
  // The card's own plain words (models/zoo.json), so each backbone says what it learnt.
  return `${c.plain ?? 'A pre-trained picture-recognition network.'} tinytune uses only what it learnt to see, and trains a new final step on your classes; its own answers are never used.${mb}`;
}

function shortLayer(l) {
  const n = l.name;
  const m = n.match(/MobilenetV2\/([^/]+)/);
  if (l.block) return `${l.block}`;
  return m ? m[1] : n.split('/').pop();
}

function renderCutOptions(info) {
  const sel = $('cut');
  const cut = info.layers[info.cut];
  const opts = [el('option', { value: '' }, `Pooled feature, ${cut.shape[2]}-d (default)`)];
  // The last layer of each of the last blocks, and the layers between them and the pooled feature.
  const before = info.layers.slice(0, info.cut);
  const ends = [];
  for (let i = before.length - 1; i > 0 && ends.length < 8; i--) {
    const l = before[i];
    if (!l.block) {
      if (l.type !== 'input' && l.type !== 'affine') ends.push(l);
      continue;
    }
    if (before[i + 1]?.block !== l.block) ends.push(l);
  }
  for (const l of ends) opts.push(el('option', { value: l.name }, `${shortLayer(l)}${l.block ? ' output' : ''} · ${l.shape.join('×')}`));
  sel.replaceChildren(...opts);
  sel.value = ends.some((l) => l.name === state.settings.cut) ? state.settings.cut : '';
  state.settings.cut = sel.value; // a layer of another backbone falls back to the default
  const max = Math.min(4, info.blocks);
  for (const o of $('blocks').options) o.disabled = o.value !== 'auto' && Number(o.value) > max;
  if (state.settings.blocks !== 'auto' && state.settings.blocks > max) $('blocks').value = String((state.settings.blocks = max));
}

async function selectModel(id) {
  const entry = state.zoo.find((m) => m.id === id) ?? state.zoo.find((m) => m.default) ?? state.zoo[0];
  if (!entry) return;
  $('model').value = entry.id;
  renderModelCard(entry, null);
  if (state.model?.id === entry.id) return;
  const prev = state.model;
  state.model = null;
  setBusy('model', true);
  $('model-progress').value = 0;
  $('model-status').textContent = `Loading ${entry.name ?? entry.id}…`;
  $('model-load').hidden = false;
  document.body.dataset.modelReady = 'false';
  const run = (async () => {
    const t0 = performance.now();
    const info = await state.client.call('loadModel', { url: modelBase(entry).href, id: entry.id });
    state.model = info;
    state.settings.modelId = entry.id;
    saveMeta();
    renderModelCard(entry, info);
    renderCutOptions(info);
    $('model-progress').value = 1;
    $('model-status').textContent = `${plainName(info.card?.name ?? entry.id)} is ready`;
    $('model-detail').textContent =
      `Model ${entry.id}: ${info.layers.length} layers, loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s.`;
    document.body.dataset.modelReady = 'true';
    cacheModelFiles(entry);
    if (prev && prev.id !== info.id) {
      if (state.trained)
        notify(
          `Switched to ${entry.id}. The model trained on ${state.trained.backbone} is not used with this backbone; train again (features are recomputed).`,
          'info',
        );
      setTrained(null);
    }
    await configure();
    await restoreStoredModel();
  })();
  state.loadingModel = run;
  try {
    await run;
  } catch (e) {
    $('model-status').textContent = 'Could not load the model';
    notify(`Could not load the model '${entry.id}': ${e.message}`, 'error');
  } finally {
    if (state.loadingModel === run) state.loadingModel = null;
    setBusy('model', false);
  }
}

/** Asks the service worker to keep this model's files (no-op for those it already has). */
function cacheModelFiles(entry) {
  const sw = navigator.serviceWorker?.controller;
  if (!sw) return;
  const base = modelBase(entry);
  const files = (entry.card?.files ?? []).map((f) => new URL(f.path, base).href);
  sw.postMessage({ type: 'cache', urls: [base.href, new URL('card.json', base).href, ...files] });
}

async function restoreStoredModel() {
  if (!state.store) return;
  const rec = await state.store.getModel().catch(() => null);
  if (!rec || rec.backbone !== state.model?.id) return;
  try {
    const res = await state.client.call('load', { bytes: rec.bytes });
    setTrained({ labels: res.labels, report: res.report ?? rec.report, backbone: res.backbone, source: 'restored' });
    renderResults(res.labels, res.report ?? rec.report);
  } catch (e) {
    notify(`The model kept from last time could not be restored: ${e.message}`, 'warn');
  }
}

function readSettings() {
  const s = state.settings;
  const num = (id, lo, hi, dflt) => {
    const v = Number($(id).value);
    return Number.isFinite(v) ? Math.min(hi, Math.max(lo, v)) : dflt;
  };
  s.epochs = Math.round(num('epochs', 1, 500, DEFAULTS.epochs));
  s.learningRate = $('lr').value === '' ? null : num('lr', 1e-6, 1, DEFAULTS.learningRate);
  s.augment = $('augment').checked;
  s.views = Math.round(num('views', 2, 8, DEFAULTS.views));
  s.blocks = $('blocks').value === 'auto' ? 'auto' : Math.round(num('blocks', 0, 4, 0));
  s.cut = $('cut').value;
  $('views').disabled = !s.augment;
  $('blocks-note').classList.toggle('emph', s.blocks !== 'auto' && s.blocks > 0);
  return s;
}

function writeSettings() {
  const s = state.settings;
  $('epochs').value = s.epochs;
  $('lr').value = s.learningRate == null ? '' : String(s.learningRate);
  if (s.learningRate != null && $('lr').value !== String(s.learningRate))
    $('lr').append(el('option', { value: String(s.learningRate), selected: true }, String(s.learningRate)));
  $('augment').checked = s.augment;
  $('views').value = s.views;
  $('views').disabled = !s.augment;
  $('blocks').value = String(s.blocks);
  if (!$('blocks').value) $('blocks').value = String((s.blocks = DEFAULTS.blocks)); // a value from an older page
}

const trainSettings = () => ({
  cut: state.settings.cut || null,
  blocks: state.settings.blocks,
  augment: state.settings.augment,
  views: state.settings.views,
  epochs: state.settings.epochs,
  learningRate: state.settings.learningRate,
  featureBudget: state.limits.featureBytes,
});

async function configure() {
  if (!state.model) return;
  try {
    await state.client.call('configure', trainSettings());
  } catch (e) {
    notify(`These settings do not work with this model: ${e.message}`, 'error');
  }
}

// ---------------------------------------------------------------------------------------
// Training

const busy = new Set();
function setBusy(what, on) {
  if (on) busy.add(what);
  else busy.delete(what);
  updateTrainState();
}

function updateTrainState() {
  const training = state.training;
  $('train').disabled = training || busy.has('model') || !state.model;
  $('stop').disabled = !training;
  $('model').disabled = training || busy.has('model');
  for (const id of ['epochs', 'lr', 'augment', 'views', 'cut', 'blocks', 'load-model', 'import-project', 'clear-project'])
    $(id).disabled = training;
  if (!training) $('views').disabled = !state.settings.augment;
  $('save-model').disabled = training || !state.trained;
  document.body.dataset.training = String(training);
  renderTrainedStatus();
  const n = state.classes.reduce((a, c) => a + c.images.filter((i) => i.status === 'ok').length, 0);
  $('train-hint').textContent =
    state.classes.length < 2
      ? 'Make at least two classes, then add images to each.'
      : n === 0
        ? 'Add images to each class (ten or more each works well).'
        : `${plural(state.classes.length, 'class')}, ${plural(n, 'image')}.`;
}

/** Why training cannot start now, or null. */
function trainingProblem() {
  if (state.classes.length < 2) {
    return `Training needs at least two classes; there ${state.classes.length === 1 ? `is only one ('${state.classes[0].name}')` : 'are none'}. Add another class with its own images.`;
  }
  const empty = state.classes.filter((c) => !c.images.some((i) => i.status === 'ok'));
  if (empty.length) {
    return `${empty.length === 1 ? 'Class' : 'Classes'} ${empty.map((c) => `'${c.name}'`).join(', ')} ${empty.length === 1 ? 'has' : 'have'} no images. Add images to ${empty.length === 1 ? 'it' : 'them'}, or delete ${empty.length === 1 ? 'it' : 'them'}, before training.`;
  }
  return null;
}

const progress = { phase: null, t0: 0, fitT0: 0, history: [], epochs: 0 };

function showProgress(fraction, text) {
  $('train-progress').hidden = false;
  $('train-bar').value = Math.max(0, Math.min(1, fraction));
  $('train-status').textContent = text;
}

function onPrepare({ done, total }) {
  progress.phase = 'prepare';
  showProgress(total ? done / total : 0, total ? `Computing features: ${done} of ${plural(total, 'image')}…` : 'Starting…');
}

// What each phase of a fit does, in plain words (Classifier.fit: validate, then refit on every image).
const PHASES = { validate: 'Checking on held-out images', refit: 'Final training on all images' };

/** A new phase (or auto mode's next candidate) restarts the bar, the time estimate and the curves. */
function phaseStart(p, epochDone) {
  const key = p.phase ?? 'train';
  if (progress.fitPhase === key && epochDone >= progress.lastEpoch) return;
  Object.assign(progress, { fitPhase: key, fitT0: performance.now(), history: [], lastEpoch: 0 });
}

function onBatch(p) {
  phaseStart(p, p.epoch);
  const f = Math.min(1, (p.epoch + (p.batchesPerEpoch ? p.batch / p.batchesPerEpoch : 0)) / p.epochs);
  const el = (performance.now() - progress.fitT0) / 1000;
  const eta = f > 0.01 ? (el * (1 - f)) / f : NaN;
  showProgress(
    f,
    `${PHASES[p.phase] ? `${PHASES[p.phase]} · ` : ''}Epoch ${Math.min(p.epoch + 1, p.epochs)} of ${p.epochs} · batch ${p.batch} of ${p.batchesPerEpoch} · about ${fmtTime(eta)} left`,
  );
  $('train-progress').dataset.phase = p.phase ?? 'train';
}

function onEpoch(e) {
  phaseStart(e, e.epoch - 1);
  if (progress.history.length === 0 && e.epoch === 1) progress.fitT0 = performance.now() - e.seconds * 1000;
  progress.lastEpoch = e.epoch;
  progress.history.push(e);
  progress.epochs = e.epochs;
  const f = e.epoch / e.epochs;
  const el = (performance.now() - progress.fitT0) / 1000;
  const eta = (el * (1 - f)) / f;
  showProgress(
    f,
    `${PHASES[e.phase] ? `${PHASES[e.phase]} · ` : ''}Epoch ${e.epoch} of ${e.epochs} · loss ${e.trainLoss.toFixed(3)} · accuracy ${pct(e.trainAccuracy)}` +
      `${Number.isFinite(e.valAccuracy) && e.nVal ? ` · validation ${pct(e.valAccuracy)}` : ''} · about ${fmtTime(eta)} left`,
  );
  $('train-progress').dataset.phase = e.phase ?? 'train';
  drawCurves($('curves'), progress.history, e.epochs);
}

async function train() {
  readSettings();
  const problem = trainingProblem();
  clearMessages('train');
  if (problem) {
    notify(problem, 'error', { topic: 'train' });
    return;
  }
  if (state.training) return;
  if (state.loadingModel) await state.loadingModel;
  if (!state.model) {
    notify('No model is loaded yet.', 'error');
    return;
  }
  state.training = true;
  updateTrainState();
  Object.assign(progress, {
    phase: 'prepare',
    t0: performance.now(),
    fitT0: 0,
    history: [],
    epochs: state.settings.epochs,
    fitPhase: null,
    lastEpoch: 0,
  });
  $('results').hidden = true;
  drawCurves($('curves'), [], state.settings.epochs);
  showProgress(0, 'Starting…');
  const classes = state.classes.map(({ id, name }) => ({ id, name }));
  try {
    const report = await state.client.call('train', { classes, settings: trainSettings() });
    const labels = report.labels ?? classes.map((c) => c.name);
    const epochs = report.history.filter((e) => e.phase !== 'refit').length;
    const total = (performance.now() - progress.t0) / 1000;
    showProgress(
      1,
      report.cancelled
        ? `Stopped after ${plural(epochs, 'epoch')}; the best weights so far are kept.`
        : `Done in ${fmtTime(total)}: ${plural(epochs, 'epoch')} (${fmtTime(report.seconds)})${report.stoppedEarly ? ', stopped early as the validation loss stopped improving' : ''}` +
            `${report.refit ? `, then ${report.refit.epochs} on all images` : ''}.`,
    );
    renderResults(labels, report);
    const saved = await state.client.call('save');
    setTrained({ labels, report, backbone: saved.backbone, source: 'trained' });
    await storeModel(saved.bytes, labels, report);
    notify(
      report.cancelled
        ? 'Training stopped. The model so far is ready to try and save.'
        : `Trained: validation accuracy ${pct(report.validationAccuracy)}. Try it on a new image below.`,
      report.cancelled ? 'info' : 'ok',
    );
  } catch (e) {
    if (e.name === 'AbortError') {
      showProgress(0, 'Training stopped before it began.');
      notify('Training stopped.', 'info');
    } else if (e.name === 'EngineCrash') {
      showProgress(0, 'Training stopped: the engine crashed.'); // restartEngine says the rest
    } else {
      showProgress(0, 'Training failed.');
      notify(`Training failed: ${e.message}`, 'error', { topic: 'train' });
    }
  } finally {
    state.training = false;
    updateTrainState();
  }
}

function renderResults(labels, report) {
  if (!report) {
    $('results').hidden = true;
    return;
  }
  $('results').hidden = false;
  const h = (report.history ?? []).filter((e) => e.phase !== 'refit'); // the final training on every image has no validation curve
  if (h.length) drawCurves($('curves'), h, Math.max(h.length, report.settings?.epochs ?? 0));
  const nVal = report.nVal ?? (report.confusion ? report.confusion.flat().reduce((a, b) => a + b, 0) : 0);
  const parts = [];
  if (nVal) parts.push(`Validation accuracy ${pct(report.validationAccuracy)} on ${plural(nVal, 'held-out image')}`);
  else parts.push('No validation images (too few images per class to hold some out); add more for an accuracy estimate');
  if (report.bestEpoch) parts.push(`best epoch ${report.bestEpoch}${h.length ? ` of ${h.length}` : ''}`);
  if (report.seconds) parts.push(`${fmtTime(report.seconds)}`);
  $('summary').textContent = parts.join(' · ');
  // Auto mode's choice and why; that the final model learned from every image, not only the training split
  const a = report.auto;
  $('auto-summary').hidden = !a;
  if (a) {
    const words = (k) => (Number(k) ? `the last ${plural(Number(k), 'block')} fine-tuned` : 'a new head alone');
    $('auto-summary').textContent =
      `Auto chose ${words(a.blocks)}: ${(a.why ?? '').replace(/K=(\d+)( [\d.]+)?/g, (_, k, v) => `${words(k)}${v ? ` ${pct(Number(v))}` : ''}`)}.`;
    $('auto-summary').dataset.blocks = String(a.blocks);
  }
  const rf = report.refit;
  $('refit-summary').hidden = !rf;
  if (rf)
    $('refit-summary').textContent =
      `The validation accuracy is the estimate from held-out images; the final model then learned from all ${plural(rf.images, 'image')} (${plural(rf.epochs, 'more epoch')}).`;
  const hasVal = nVal > 0 && report.confusion;
  $('per-class-block').hidden = !hasVal;
  $('confusion-block').hidden = !hasVal;
  if (hasVal) {
    renderPerClass($('per-class'), labels, report.perClassAccuracy ?? []);
    renderConfusion($('confusion'), labels, report.confusion);
  }
}

function setTrained(t) {
  state.trained = t;
  if (!t) {
    // nothing trained for this backbone: no stale report or predictions on show
    $('results').hidden = true;
    if (!state.training) $('train-progress').hidden = true;
    $('predictions').replaceChildren();
    $('predictions').dataset.top = '';
    $('predict-img').hidden = true;
    $('predict-name').textContent = '';
    progress.history = [];
    drawCurves($('curves'), [], state.settings.epochs);
  }
  $('predict-file').disabled = !t;
  $('predict-drop').classList.toggle('disabled', !t);
  $('live-toggle').disabled = !t;
  $('export-model').disabled = !t;
  $('export-onnx').disabled = !t;
  if (!t) $('test-set').hidden = true;
  $('inbox-file').disabled = !t;
  $('inbox-drop').classList.toggle('disabled', !t);
  if (!t) live?.stop();
  document.body.dataset.trained = String(!!t);
  updateTrainState();
  if (t) inbox?.predictAll(true);
}

/** What the model in use is, and whether the classes have changed since it was trained. */
function renderTrainedStatus() {
  const t = state.trained;
  const names = state.classes.map((c) => c.name);
  const stale = !!t && (t.labels.length !== names.length || t.labels.some((l, i) => l !== names[i]));
  const status = $('trained-status');
  status.textContent = !t
    ? 'No model yet: train one, or load a .ttm file.'
    : stale
      ? `${t.source === 'file' ? 'This loaded model does not match your classes' : 'This model is out of date'}: it knows ${t.labels.join(', ')}, but your classes are now ${names.join(', ') || 'none'}. Train again to use them.`
      : `${t.source === 'file' ? 'Loaded model' : t.source === 'restored' ? 'Model from your last session' : 'Trained model'}: ${t.labels.join(', ')}.`;
  status.classList.toggle('stale', stale);
  document.body.dataset.stale = String(stale);
}

// ---------------------------------------------------------------------------------------
// Predict, model files, project files

let predictUrl = null;
async function predict(file) {
  if (!file) return;
  if (!state.trained) {
    notify('Train a model first (or load a .ttm file), then try an image.', 'warn', { timeout: 8000 });
    return;
  }
  $('batch').hidden = true;
  if (predictUrl) URL.revokeObjectURL(predictUrl);
  predictUrl = null;
  const thumb = await makeThumbnail(file);
  if (thumb) {
    predictUrl = URL.createObjectURL(thumb);
    $('predict-img').src = predictUrl;
  }
  $('predict-img').hidden = !thumb;
  $('predict-name').textContent = file.name;
  $('predictions').replaceChildren(el('p', { class: 'note' }, state.training ? 'Waiting for training to finish…' : 'Classifying…'));
  try {
    const bytes = new Uint8Array(await file.arrayBuffer());
    const preds = await state.client.call('predict', { bytes, topk: 5 }, [bytes.buffer]);
    renderPredictions($('predictions'), preds);
    $('predictions').dataset.top = preds[0]?.label ?? '';
  } catch (e) {
    $('predictions').replaceChildren();
    $('predictions').dataset.top = '';
    notify(`Could not classify '${file.name}': ${e.message}`, 'error');
  }
}

/** Many images dropped on Try it: one row each in a table sortable by confidence. */
let batchTable = null;
async function predictBatch(files) {
  if (!state.trained) {
    notify('Train a model first (or load a .ttm file), then try images.', 'warn', { timeout: 8000 });
    return;
  }
  batchTable ??= new BatchTable($('batch-table'));
  batchTable.clear();
  $('batch').hidden = false;
  $('predictions').replaceChildren();
  $('predict-img').hidden = true;
  $('predict-name').textContent = `${plural(files.length, 'image')}`;
  $('batch-title').textContent = `Predictions for ${plural(files.length, 'image')}: click a column to sort`;
  $('batch').dataset.done = 'false';
  for (const file of files) {
    const thumb = await makeThumbnail(file);
    const row = { name: file.webkitRelativePath || file.name, url: thumb ? URL.createObjectURL(thumb) : null };
    try {
      const bytes = new Uint8Array(await file.arrayBuffer());
      Object.assign(row, topOf(await state.client.call('predict', { bytes, topk: 1000 }, [bytes.buffer])));
    } catch (e) {
      row.error = e.message;
    }
    batchTable.add(row);
  }
  $('batch').dataset.done = 'true';
}

async function predictFiles(files) {
  if (files.length > 1) await predictBatch(files);
  else await predict(files[0]);
}

/** How to run an exported model: the preprocessing the backbone was trained with (RGB / 255, bilinear resize with aligned corners). */
function exportSnippet(format, size) {
  const [h, w] = size;
  if (format === 'onnx') {
    return `import * as ort from 'onnxruntime-web';

const session = await ort.InferenceSession.create('model.onnx');
// x: Float32Array of ${h}×${w}×3 RGB values in [0, 1] (pixels / 255, resized bilinearly, corners aligned), NHWC
const input = new ort.Tensor('float32', x, [1, ${h}, ${w}, 3]);
const out = await session.run({ [session.inputNames[0]]: input });
const probs = out[session.outputNames[0]].data; // one probability per class`;
  }
  return `import * as tf from '@tensorflow/tfjs';

// the unzipped folder, served next to your page
const model = await tf.loadLayersModel('model/model.json');
const { labels } = await (await fetch('model/metadata.json')).json();

// img: an <img>, <video> or <canvas>
const probs = tf.tidy(() => {
  const rgb = tf.browser.fromPixels(img).toFloat().div(255); // RGB in [0, 1]
  const x = tf.image.resizeBilinear(rgb, [${h}, ${w}], true); // align corners
  return model.predict(x.expandDims(0)).dataSync();
});
labels.forEach((label, i) => console.log(label, probs[i].toFixed(3)));`;
}

/** The whole model, image to probabilities: a zip of the TensorFlow.js layers model, or an ONNX file. */
async function exportModel(format = 'tfjs') {
  try {
    const res = await state.client.call('export', { format });
    const name = safeName(res.labels.join('-'));
    let size = [224, 224];
    if (format === 'onnx') {
      download(res.files['model.onnx'], `${name}.onnx`);
    } else {
      const meta = JSON.parse(new TextDecoder().decode(res.files['metadata.json']));
      if (Array.isArray(meta.input?.shape)) size = meta.input.shape.slice(-3, -1);
      const bytes = zip(res.files);
      download(bytes, `${name}-tfjs.zip`);
    }
    $('export-snippet').textContent = exportSnippet(format, size);
    $('export-help').hidden = false;
    $('export-help').open = true;
    $('export-help').dataset.format = format;
    notify(
      format === 'onnx'
        ? 'Exported the whole model as ONNX (image to probabilities).'
        : 'Exported the model for TensorFlow.js: a zip of model.json, weights.bin and metadata.json. How to use it is under Files.',
      'ok',
    );
  } catch (e) {
    notify(`Could not export the model: ${e.message}`, 'error');
  }
}

/**
 * A drop on Try it that is a labelled test set: one folder holding only subfolders (one per
 * class), or several folders (one per class). Returns [{ label, files }] or null.
 */
function labelledSet(groups) {
  if (!groups.length || groups.some((g) => !g.folder)) return null;
  const sets = groups.length === 1 ? (groups[0].loose || !groups[0].subfolders?.length ? null : groups[0].subfolders) : groups;
  return sets?.filter((g) => g.files.length).map((g) => ({ label: g.folder, files: g.files })) ?? null;
}

/** A labelled test set: Classifier.evaluate's accuracy, per class, confusion and calibration error. */
async function evaluateSet(sets) {
  if (!state.trained) {
    notify('Train a model first (or load a .ttm file), then test it on a labelled folder.', 'warn', { timeout: 8000 });
    return;
  }
  const items = sets.flatMap((s) => s.files.map((f) => ({ label: s.label, name: `${s.label}/${f.name}`, bytes: f })));
  const box = $('test-set');
  box.hidden = false;
  box.dataset.done = 'false';
  $('batch').hidden = true;
  $('test-details').hidden = true;
  $('test-title').textContent = `Test set: ${plural(items.length, 'image')} in ${plural(sets.length, 'class folder')}`;
  $('test-summary').textContent = 'Testing…';
  try {
    const r = await state.client.call('evaluate', { items });
    state.evaluation = r;
    const parts = [`Accuracy ${pct(r.accuracy)} on ${plural(r.n, 'image')}`, `calibration error ${pct(r.calibration.ece)}`];
    if (r.unknown) parts.push(`${r.unknown} looked like none of the classes`);
    if (r.skipped.length)
      parts.push(`${plural(r.skipped.length, 'file')} skipped: ${r.skipped.map((x) => `${x.name} (${x.reason})`).join('; ')}`);
    $('test-summary').textContent = parts.join(' · ');
    renderPerClass($('test-per-class'), r.labels, r.perClassAccuracy);
    renderConfusion($('test-confusion'), r.labels, r.confusion);
    $('test-details').hidden = false;
  } catch (e) {
    $('test-summary').textContent = '';
    box.hidden = true;
    notify(`Could not test the model on this folder: ${e.message}`, 'error');
  } finally {
    box.dataset.done = 'true';
  }
}

async function saveModel() {
  try {
    const { bytes, labels } = await state.client.call('save');
    download(bytes, `${safeName(labels.join('-'))}.ttm`);
    notify(`Saved the model (${formatBytes(bytes.length)}) as a .ttm file.`, 'ok');
  } catch (e) {
    notify(`Could not save the model: ${e.message}`, 'error');
  }
}

async function loadModelFile(file) {
  if (!file) return;
  try {
    if (state.loadingModel) await state.loadingModel;
    const bytes = new Uint8Array(await file.arrayBuffer());
    const res = await state.client.call('load', { bytes: bytes.slice() });
    setTrained({ labels: res.labels, report: res.report, backbone: res.backbone, source: 'file' });
    renderResults(res.labels, res.report);
    await storeModel(bytes, res.labels, res.report);
    notify(`Loaded '${file.name}': classes ${res.labels.join(', ')}.`, 'ok');
  } catch (e) {
    notify(`Could not load '${file.name}': ${e.message}`, 'error');
  }
}

/** The project as the page holds it (what a reload would restore, plus what storage refused). */
async function projectSnapshot() {
  const images = [];
  for (const c of state.classes) {
    for (const [i, im] of c.images.entries()) {
      if (!im.blob || im.status === 'checking') continue;
      const thumb = im.url
        ? await fetch(im.url)
            .then((r) => r.blob())
            .catch(() => null)
        : null;
      images.push({ id: im.id, classId: c.id, name: im.name, type: im.blob.type ?? '', added: i, blob: im.blob, thumb });
    }
  }
  const stored = await state.store?.getModel().catch(() => null);
  const model =
    stored ??
    (state.trained && state.sessionModel
      ? {
          backbone: state.trained.backbone,
          labels: state.trained.labels,
          saved: Date.now(),
          report: slimReport(state.trained.report),
          bytes: state.sessionModel,
        }
      : null);
  return { images, model };
}

async function exportProject() {
  try {
    const { images, model } = await projectSnapshot();
    const blob = await pack({ settings: state.settings, classes: state.classes.map(({ id, name }) => ({ id, name })), images, model });
    download(blob, `${safeName(state.classes.map((c) => c.name).join('-') || 'tinytune')}.ttproject`);
    notify(`Exported the project (${plural(images.length, 'image')}, ${formatBytes(blob.size)}).`, 'ok');
  } catch (e) {
    notify(`Could not export the project: ${e.message}`, 'error');
  }
}

async function importProject(file) {
  if (!file) return;
  try {
    // unpack checks the whole file first: a damaged or hostile one leaves the project as it was
    const p = await unpack(file);
    if (p.images.length > state.limits.images) {
      notify(
        `Could not import '${file.name}': it has ${fmtCount(p.images.length)} images, more than the ${fmtCount(state.limits.images)} this page works with. The current project is unchanged.`,
        'error',
        { topic: 'import' },
      );
      return;
    }
    const images = p.images.map((im) => ({ ...im, size: im.blob?.size ?? 0 }));
    const model = p.model ? { ...p.model, bytes: p.model.bytes } : null;
    const settings = { ...DEFAULTS, ...p.settings };
    if (state.store && !state.store.readOnly) {
      await state.store.replace({ settings, classes: p.classes, images, model }); // one transaction: all or nothing
      await restoreProject();
    } else {
      // no storage (or another tab's project): the imported project lives in this session
      state.sessionModel = model ? new Uint8Array(await model.bytes.arrayBuffer()) : null;
      await restoreProject({ meta: { settings, classes: p.classes }, images, model: null });
      if (state.sessionModel && state.client) {
        const res = await state.client.call('load', { bytes: state.sessionModel.slice() });
        setTrained({ labels: res.labels, report: res.report ?? model.report, backbone: res.backbone, source: 'file' });
        renderResults(res.labels, res.report ?? model.report);
      }
    }
    notify(
      `Imported '${file.name}': ${plural(p.classes.length, 'class')}, ${plural(p.images.length, 'image')}${p.model ? ', and its model' : ''}.`,
      'ok',
    );
  } catch (e) {
    notify(
      e.name === 'ProjectFileError'
        ? `Could not import: ${e.message}. The current project is unchanged.`
        : `Could not import '${file.name}': ${e.message}`,
      'error',
      { topic: 'import' },
    );
  }
}

let clearArmed = null;
async function clearProject() {
  const btn = $('clear-project');
  if (!clearArmed) {
    btn.textContent = 'Really clear everything?';
    btn.classList.add('armed');
    clearArmed = setTimeout(() => {
      clearArmed = null;
      btn.textContent = 'Clear project';
      btn.classList.remove('armed');
    }, 4000);
    return;
  }
  clearTimeout(clearArmed);
  clearArmed = null;
  btn.textContent = 'Clear project';
  btn.classList.remove('armed');
  await state.store?.replace({ settings: state.settings, classes: [] });
  await inbox?.clear();
  await restoreProject();
  notify('Cleared the project.', 'info');
}

// ---------------------------------------------------------------------------------------
// Start-up

/** Rebuilds the page (and the worker's image set) from what IndexedDB holds (or from `given`: { meta, images, model }). */
async function restoreProject(given = null) {
  for (const c of state.classes) {
    for (const im of c.images) if (im.url) URL.revokeObjectURL(im.url);
    c.el.remove();
  }
  state.classes = [];
  await state.client?.call('reset');
  setTrained(null);
  $('results').hidden = true;
  $('train-progress').hidden = true;
  drawCurves($('curves'), [], state.settings.epochs);
  const saved = given ?? (state.store ? await state.store.load() : { meta: null, images: [], model: null });
  const prevModel = state.settings.modelId;
  state.settings = { ...DEFAULTS, ...(saved.meta?.settings ?? {}) };
  writeSettings();
  const byClass = new Map();
  for (const rec of saved.images) {
    if (!byClass.has(rec.classId)) byClass.set(rec.classId, []);
    byClass.get(rec.classId).push(rec);
  }
  const classes = saved.meta?.classes ?? [];
  let shown = 0;
  for (const { id, name } of classes) {
    const cls = { id, name, images: [], el: null };
    state.classes.push(cls);
    cls.el = renderClassCard(cls);
    $('classes').insertBefore(cls.el, $('add-class'));
    for (const rec of byClass.get(id) ?? []) {
      // a big project's thumbnails go in by the hundred, the page free between
      if (++shown % 200 === 0) {
        updateCount(cls);
        await new Promise((r) => setTimeout(r, 0));
      }
      // im.blob is IndexedDB's handle on the stored file, not its bytes
      const im = { id: rec.id, name: rec.name, url: rec.thumb ? URL.createObjectURL(rec.thumb) : null, status: 'ok', blob: rec.blob };
      cls.images.push(im);
      renderThumb(cls, im);
      state.client?.call('addImage', { classId: id, bytes: rec.blob, id: rec.id, name: rec.name, trusted: true }).catch(() => {});
    }
    updateCount(cls);
  }
  // images of classes that no longer exist (a crash between two writes) are dropped
  for (const [cid, recs] of byClass)
    if (!classes.some((c) => c.id === cid)) for (const r of recs) state.store?.deleteImage(r.id).catch(() => {});
  if (!state.classes.length) {
    addClass('Class 1');
    addClass('Class 2');
  }
  updateTrainState();
  if (state.client && state.zoo.length) {
    if (state.model && (state.settings.modelId ?? prevModel) === state.model.id) {
      await configure();
      await restoreStoredModel();
    } else await selectModel(state.settings.modelId);
  }
}

async function registerServiceWorker() {
  const chip = $('chip-offline');
  if (!('serviceWorker' in navigator)) {
    chip.textContent = 'No offline mode';
    chip.className = 'chip warn';
    chip.title = 'This browser has no service workers: the page needs the network on each visit.';
    return;
  }
  try {
    await navigator.serviceWorker.register(new URL('./sw.js', import.meta.url), { scope: new URL('../', import.meta.url).pathname });
    if (!navigator.serviceWorker.controller) {
      // First visit: wait (briefly) until the worker controls the page, so the engine and
      // model files loaded meanwhile can be handed to it to keep (end of boot).
      await Promise.race([
        new Promise((r) => navigator.serviceWorker.addEventListener('controllerchange', r, { once: true })),
        new Promise((r) => setTimeout(r, 4000)),
      ]);
    }
    state.swControlled = !!navigator.serviceWorker.controller;
    chip.textContent = state.swControlled ? 'Works offline' : 'Offline mode pending';
    chip.className = `chip ${state.swControlled ? 'ok' : 'warn'}`;
    chip.title = state.swControlled
      ? 'The page, the engine and the models you use are kept by a service worker: after this visit tinytune works without a network.'
      : 'The service worker is installing; reload once to make tinytune available offline.';
  } catch (e) {
    chip.textContent = 'No offline mode';
    chip.className = 'chip warn';
    chip.title = `The service worker could not be registered: ${e.message}`;
  }
}

function renderSimd(simd) {
  const chip = $('chip-simd');
  chip.textContent = simd ? 'WASM SIMD' : 'No WASM SIMD: scalar build';
  chip.className = `chip ${simd ? 'ok' : 'warn'}`;
  chip.title = simd
    ? 'The engine runs its WebAssembly SIMD build.'
    : 'This browser has no WebAssembly SIMD: the engine runs its scalar build, which gives the same results but is slower.';
}

function renderEnvironment() {
  const simd = hasSimd();
  renderSimd(simd);
  if (!simd) {
    notify(
      'This browser does not support WebAssembly SIMD, so tinytune runs its scalar build instead: the results are the same, but computing features and training are slower. Current Chrome, Edge, Firefox and Safari have SIMD.',
      'warn',
      { topic: 'simd' },
    );
  }
  if (typeof Worker === 'undefined') notify('This browser has no Web Workers; tinytune cannot run here.', 'error');
}

function renderThreads(env) {
  renderSimd(env.simd); // what the engine actually runs
  const chip = $('chip-threads');
  const iso = globalThis.crossOriginIsolated === true;
  chip.textContent = `${plural(env.threads, 'thread')}`;
  chip.className = 'chip';
  const why =
    env.threads > 1
      ? ''
      : !iso
        ? ' Only one: the page is not cross-origin isolated (the server sends no COOP/COEP headers), so WebAssembly threads are off.'
        : !env.simd
          ? ' Only one: the threaded builds need WebAssembly SIMD.'
          : '';
  chip.title =
    `The engine runs in a Web Worker with ${plural(env.threads, 'thread')} (${env.simd ? 'SIMD' : 'scalar'} build).${why} ` +
    `Cross-origin isolated: ${iso ? 'yes' : 'no'}; the page stays responsive while it trains.`;
  $('env-detail').textContent =
    `Engine: ${env.simd ? 'WebAssembly SIMD' : 'WebAssembly scalar (no SIMD)'} build · ${plural(env.threads, 'thread')} in a Web Worker · crossOriginIsolated: ${iso ? 'yes' : 'no'}`;
}

function bindUi() {
  $('add-class').addEventListener('click', () => addClass(undefined, { focus: true }));
  bindDrop($('add-class'), async (dt) => {
    const groups = await droppedGroups(dt);
    for (const g of groups) await addFiles(addClass(g.folder ?? undefined), g.files);
  });
  $('train').addEventListener('click', train);
  $('stop').addEventListener('click', () => {
    state.client.call('cancel').catch(() => {});
    $('train-status').textContent = 'Stopping…';
  });
  $('model').addEventListener('change', () => selectModel($('model').value));
  for (const id of ['epochs', 'lr', 'augment', 'views', 'cut', 'blocks']) {
    $(id).addEventListener('change', () => {
      readSettings();
      writeSettings();
      saveMeta();
      configure();
    });
  }
  $('predict-file').addEventListener('change', () => {
    predictFiles([...$('predict-file').files]);
    $('predict-file').value = '';
  });
  // A folder of class folders is a labelled test set; anything else is one image or a batch.
  bindDrop($('predict-drop'), async (dt) => {
    const groups = await droppedGroups(dt);
    const sets = labelledSet(groups);
    if (sets) await evaluateSet(sets);
    else await predictFiles(groups.flatMap((g) => g.files));
  });
  $('export-model').addEventListener('click', () => exportModel('tfjs'));
  $('export-onnx').addEventListener('click', () => exportModel('onnx'));
  bindDrop($('inbox-drop'), async (dt) => {
    if (!state.trained) {
      notify('Train a model first: it suggests the classes for new images.', 'warn', { timeout: 8000 });
      return;
    }
    await inbox.add((await droppedGroups(dt)).flatMap((g) => g.files));
  });
  $('inbox-file').addEventListener('change', () => {
    inbox.add([...$('inbox-file').files]);
    $('inbox-file').value = '';
  });
  $('inbox-drop').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      $('inbox-file').click();
    }
  });
  $('predict-drop').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      $('predict-file').click();
    }
  });
  $('save-model').addEventListener('click', saveModel);
  $('load-model').addEventListener('change', () => {
    loadModelFile($('load-model').files[0]);
    $('load-model').value = '';
  });
  $('export-project').addEventListener('click', exportProject);
  $('import-project').addEventListener('change', () => {
    importProject($('import-project').files[0]);
    $('import-project').value = '';
  });
  $('clear-project').addEventListener('click', clearProject);
  recorder = new Recorder({
    video: $('camera-video'),
    button: $('camera-capture'),
    fps: () => $('camera-fps').value,
    onFrame: recordedFrame,
  });
  live = new LivePreview({
    client: null,
    video: $('live-video'),
    bars: $('live-bars'),
    rate: $('live-rate'),
    button: $('live-toggle'),
    notify,
    labels: () => state.trained?.labels ?? [],
  });
  state.live = live; // its stats: frames predicted, time per frame
  $('live-toggle').addEventListener('click', () => {
    if (!state.trained) {
      notify('Train a model first (or load a .ttm file), then try it live.', 'warn', { timeout: 8000 });
      return;
    }
    live.toggle();
  });
  $('camera-close').addEventListener('click', closeCamera);
  $('camera-dialog').addEventListener('close', closeCamera);
  // a file dropped outside the drop zones must not replace the page
  window.addEventListener('dragover', (e) => e.preventDefault());
  window.addEventListener('drop', (e) => e.preventDefault());
  const redraw = () => {
    if (progress.history.length) drawCurves($('curves'), progress.history, progress.epochs);
    else if (state.trained?.report?.history?.length) renderResults(state.trained.labels, state.trained.report);
    else drawCurves($('curves'), [], state.settings.epochs);
  };
  window.addEventListener('resize', redraw);
  matchMedia('(prefers-color-scheme: dark)').addEventListener?.('change', redraw); // the chart's ink follows the colour scheme
}

/** True when this tab holds the project (a Web Lock held until the tab closes); false if another tab does. */
function holdProjectLock() {
  if (!navigator.locks?.request) return Promise.resolve(true);
  return new Promise((resolve) => {
    navigator.locks
      .request('tinytune-project', { ifAvailable: true }, (lock) => {
        resolve(!!lock);
        return lock ? new Promise(() => {}) : undefined;
      })
      .catch(() => resolve(true));
  });
}

/** The store with its reads only: a second tab's writes are dropped. */
function readOnly(store) {
  const none = () => Promise.resolve();
  return {
    load: () => store.load(),
    getImage: (id) => store.getImage(id),
    getModel: () => store.getModel(),
    saveMeta: none,
    putImage: none,
    deleteImage: none,
    deleteClassImages: none,
    putModel: none,
    deleteModel: none,
    replace: none,
    readOnly: true,
  };
}

async function boot() {
  inbox = makeInbox();
  bindUi();
  renderEnvironment();
  drawCurves($('curves'), [], DEFAULTS.epochs);
  // The engine (download, compile, threads) and the model list load while the project is
  // read, not after it: on a first visit that was most of the wait for a usable page.
  const engine = spawnEngine();
  const zoo = loadZoo().then(
    (models) => ({ models }),
    (error) => ({ error }),
  );
  try {
    state.store = await ProjectStore.open();
    $('chip-storage').textContent = 'Saved in this browser';
    $('chip-storage').className = 'chip ok';
    $('chip-storage').title = 'Classes, images, settings and the trained model are kept in this browser (IndexedDB); nothing is uploaded.';
    if (!(await holdProjectLock())) {
      // Two tabs writing one project would interleave their changes; the first keeps it.
      state.store = readOnly(state.store);
      $('chip-storage').textContent = 'Open in another tab: not saved';
      $('chip-storage').className = 'chip warn';
      $('chip-storage').title = 'Another tab has this project open and saves it; this tab keeps its changes only until it is closed.';
      notify(
        'This project is already open in another tab. This tab shows it as last saved, but keeps none of its changes, so the two tabs cannot overwrite each other. To work here, close the other tab and reload this one.',
        'warn',
        { topic: 'tabs' },
      );
    }
  } catch (e) {
    $('chip-storage').textContent = 'Not saved';
    $('chip-storage').className = 'chip warn';
    notify(
      `This browser does not let the page store data (${e.message}). Everything works for this session, but nothing will be kept: closing or reloading the page loses the project. Export it (.ttproject) to keep it.`,
      'warn',
      { topic: 'storage' },
    );
  }
  state.camera = await detectCamera();
  await inbox.open();
  await restoreProject(); // classes and thumbnails at once; the engine follows
  if (!(await startEngine(engine))) return;
  const { models, error } = await zoo;
  if (error) {
    notify(error.message, 'error');
    return;
  }
  state.zoo = models;
  // each backbone in plain words: what it was trained to see (the card's description)
  $('model').replaceChildren(
    ...state.zoo.map((m) =>
      el(
        'option',
        { value: m.id },
        `${plainName(m.card?.name ?? m.id)}${m.card?.description ? `: ${m.card.description}` : ''}${m.default ? ' (default)' : ''}`,
      ),
    ),
  );
  await selectModel(state.settings.modelId);
  document.body.dataset.ready = 'true';
  performance.mark('tinytune:usable');
}

/**
 * The service worker is registered once the page is usable (or could not start): on a
 * first visit its install downloads the page's files again, which held up the engine's
 * own downloads (a browser opens 6 connections to a host). Once it controls the page, it
 * keeps the engine build this browser runs and the model for the next visit.
 */
async function keepOffline() {
  await registerServiceWorker();
  const sw = navigator.serviceWorker?.controller;
  if (sw && state.env?.wasm) sw.postMessage({ type: 'cache', urls: [state.env.wasm] });
  const entry = state.zoo.find((m) => m.id === state.model?.id);
  if (entry) cacheModelFiles(entry);
}

/** Creates the engine worker and asks it to start; startEngine waits for it. */
function spawnEngine() {
  const client = new EngineClient();
  // The worker detects SIMD for itself; where the page has none it will not either, and
  // asking for the scalar build outright keeps the two in agreement.
  const init = client.call('init', hasSimd() ? {} : { simd: false });
  init.catch(() => {}); // reported by startEngine
  return { client, init };
}

/** Starts the engine worker and hands it every image the page holds; false if it cannot start. */
async function startEngine({ client, init } = spawnEngine()) {
  state.client = client;
  live.client = state.client;
  state.client.on('crash', restartEngine);
  state.client.on('loadProgress', ({ loaded, total }) => {
    $('model-progress').value = total ? loaded / total : 0;
    $('model-status').textContent = `Downloading weights: ${formatBytes(loaded)} of ${formatBytes(total)}`;
  });
  state.client.on('prepare', onPrepare);
  state.client.on('batch', onBatch);
  state.client.on('epoch', onEpoch);
  state.client.on('skipped', ({ id, name, reason }) => {
    for (const c of state.classes) {
      const im = c.images.find((i) => i.id === id);
      if (im) removeImage(c, im);
    }
    notify(`Skipped '${name}': ${reason}`, 'warn');
  });
  state.client.on('embedded', ({ pending }) => {
    $('features-status').textContent = pending
      ? `Preparing images for training in the background: ${plural(pending, 'image')} to go.`
      : 'Every image is ready for training.';
  });
  state.client.on('fatal', (e) => notify(e.message, 'error'));
  try {
    state.env = await init;
    performance.mark('tinytune:engine');
    renderThreads(state.env);
  } catch (e) {
    notify(`The engine could not start: ${e.message}`, 'error');
    return;
  }
  let sent = 0;
  for (const c of state.classes)
    for (const im of c.images) {
      if (im.blob)
        state.client.call('addImage', { classId: c.id, bytes: im.blob, id: im.id, name: im.name, trusted: true }).catch(() => {});
      if (++sent % 200 === 0) await new Promise((r) => setTimeout(r, 0)); // a big project's images go in by the hundred, the page free between
    }
  return true;
}

/**
 * The engine crashed (web/client.mjs): the images, classes, labels and the last model are
 * all on the page's side (and in IndexedDB), so a new worker gets them again and the user
 * can train again; only the run in progress is lost.
 */
let restarting = null;
async function restartEngine(err) {
  if (restarting) return;
  document.body.dataset.engine = 'restarting';
  notify(
    `${err.message[0].toUpperCase()}${err.message.slice(1)}. It has been restarted: your classes, images and labels are all still here${state.training ? '; the training run was lost, press Train to run it again' : ''}.`,
    'error',
    { topic: 'crash' },
  );
  restarting = (async () => {
    const modelId = state.model?.id ?? state.settings.modelId;
    state.model = null;
    document.body.dataset.modelReady = 'false';
    if (state.training) {
      state.training = false;
      showProgress(0, 'Training stopped: the engine crashed.');
    }
    const hadModel = !!state.trained;
    if (!(await startEngine())) return;
    await selectModel(modelId); // with IndexedDB this also brings back the kept model
    // a model that lived only in this session (no IndexedDB) comes back from memory
    if (hadModel && !state.store && state.sessionModel)
      await state.client.call('load', { bytes: state.sessionModel.slice() }).catch(() => {});
  })();
  try {
    await restarting;
  } finally {
    restarting = null;
    document.body.dataset.engine = 'ok';
    updateTrainState();
  }
}

boot()
  .catch((e) => notify(`tinytune could not start: ${e.message}`, 'error'))
  .finally(keepOffline);
