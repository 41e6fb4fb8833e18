// The Train panel: the backbone (model zoo, model card, loading it in the worker), the
// training settings, and a training run: its progress bar, curves and results. Everything it
// asks of the engine goes through state.client ('loadModel', 'configure', 'train', 'save',
// 'load'). The other panels import its state changes (setTrained, updateTrainState).
import { state, $, DEFAULTS, plural, pct, fmtTime, notify, clearMessages, saveMeta, storeModel } from './state.mjs';
import { formatBytes } from './files.mjs';
import { drawCurves, renderPerClass, renderConfusion } from './charts.mjs';
import { el } from './dom.mjs';

// ---------------------------------------------------------------------------------------
// Model selection

export async function loadZoo() {
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

export const plainName = (name) => name.split(/[,(]/)[0].trim();

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

export async function selectModel(id) {
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
export function cacheModelFiles(entry) {
  const sw = navigator.serviceWorker?.controller;
  if (!sw) return;
  const base = modelBase(entry);
  const files = (entry.card?.files ?? []).map((f) => new URL(f.path, base).href);
  sw.postMessage({ type: 'cache', urls: [base.href, new URL('card.json', base).href, ...files] });
}

export async function restoreStoredModel() {
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

export function readSettings() {
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

export function writeSettings() {
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

export async function configure() {
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
export function setBusy(what, on) {
  if (on) busy.add(what);
  else busy.delete(what);
  updateTrainState();
}

export function updateTrainState() {
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

export const progress = { phase: null, t0: 0, fitT0: 0, history: [], epochs: 0 };

export function showProgress(fraction, text) {
  $('train-progress').hidden = false;
  $('train-bar').value = Math.max(0, Math.min(1, fraction));
  $('train-status').textContent = text;
}

export function onPrepare({ done, total }) {
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

export function onBatch(p) {
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

export function onEpoch(e) {
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

export async function train() {
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

export function renderResults(labels, report) {
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

export function setTrained(t) {
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
  if (!t) state.live?.stop();
  document.body.dataset.trained = String(!!t);
  updateTrainState();
  if (t) state.inbox?.predictAll(true);
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
