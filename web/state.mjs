// The page's shared state and the small things every panel uses: the state object (also
// window.tinytune, for the console and the tests), number formats, messages, and the writes
// of the project's settings and model to IndexedDB (web/project.mjs). A leaf: it imports no
// panel. Like every web/ module it knows nothing of tensors; the engine is reached only
// through state.client, the worker client (web/client.mjs).
import { el } from './dom.mjs';

export const $ = (id) => document.getElementById(id);
export const DEFAULTS = { modelId: null, cut: '', blocks: 'auto', epochs: 30, learningRate: null, augment: true, views: 4 };
// The largest project the page takes: 3,000 images, where the default settings' features
// (172 KB an image) reach the worker's budget, featureBytes (wasm/worker.mjs overBudget,
// which refuses heavier settings by itself). bench/bigproject.mjs ran 2,000 phone photos.
// Beyond it, an add or an import is refused with a message, before memory runs out.
// The tests lower these (window.tinytune.limits).
const LIMITS = { images: 3000, featureBytes: 512 * 1024 * 1024 };

export const state = {
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
  live: null, // LivePreview (web/live.mjs), the Try it panel's webcam
  inbox: null, // Inbox (web/batch.mjs), the labelling loop
};
window.tinytune = state; // for the curious (and the console)

export const uid = () => (crypto.randomUUID ? crypto.randomUUID() : `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`);
export const plural = (n, w) => `${n} ${w}${n === 1 ? '' : w.endsWith('s') ? 'es' : 's'}`;
export const pct = (v) =>
  v === null || v === undefined || !Number.isFinite(v) ? '–' : `${(v * 100).toFixed(v === 1 || v === 0 ? 0 : 1)}%`;
export const fmtTime = (s) =>
  !Number.isFinite(s)
    ? '…'
    : s < 10
      ? `${Math.max(0, s).toFixed(1)} s`
      : s < 60
        ? `${Math.round(s)} s`
        : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
export const fmtCount = (n) => String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',');

// ---------------------------------------------------------------------------------------
// Messages

/** Shows a message; kind: info | ok | warn | error. Errors and warnings stay until closed. */
export function notify(text, kind = 'info', { details = null, timeout, topic = null } = {}) {
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
export function clearMessages(topic) {
  for (const m of $('messages').querySelectorAll(`.msg[data-topic="${topic}"]`)) m.remove();
}

// ---------------------------------------------------------------------------------------
// Persistence

export function saveMeta() {
  if (!state.store) return;
  const meta = { settings: state.settings, classes: state.classes.map(({ id, name }) => ({ id, name })) };
  state.store.saveMeta(meta).catch((e) => notify(`Could not save the project in this browser: ${e.message}`, 'error'));
}

export async function storeModel(bytes, labels, report) {
  state.sessionModel = bytes instanceof Uint8Array ? bytes.slice() : null; // for an engine restart without IndexedDB
  if (!state.store) return;
  const rec = { backbone: state.model.id, labels, saved: Date.now(), report: slimReport(report), bytes: new Blob([bytes]) };
  await state.store.putModel(rec).catch((e) => notify(`Could not keep the model in this browser: ${e.message}`, 'warn'));
}

export const slimReport = (r) =>
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
