// tinytune's page: classes of images, training in a worker, predictions, model files and a
// project that survives reloads. Plain DOM; the engine runs in wasm/worker.mjs, reached only
// through the worker client (web/client.mjs). This module starts the page: it binds the
// controls to the panels (web/panel-classes.mjs, panel-train.mjs, panel-try.mjs,
// panel-files.mjs, sharing web/state.mjs), opens the project's storage, starts (and
// restarts) the engine worker and registers the service worker (web/sw.js).
import { hasSimd } from '../wasm/module.mjs';
import { ProjectStore } from './project.mjs';
import { EngineClient } from './client.mjs';
import { droppedGroups, formatBytes } from './files.mjs';
import { drawCurves } from './charts.mjs';
import { LivePreview } from './live.mjs';
import { el } from './dom.mjs';
import { state, $, DEFAULTS, plural, notify, saveMeta } from './state.mjs';
import { addClass, removeImage, addFiles, bindDrop, detectCamera, closeCamera, bindRecorder } from './panel-classes.mjs';
import {
  loadZoo,
  plainName,
  selectModel,
  cacheModelFiles,
  readSettings,
  writeSettings,
  configure,
  updateTrainState,
  progress,
  showProgress,
  onPrepare,
  onBatch,
  onEpoch,
  train,
  renderResults,
} from './panel-train.mjs';
import { makeInbox, predictFiles, labelledSet, evaluateSet } from './panel-try.mjs';
import { exportModel, saveModel, loadModelFile, exportProject, importProject, clearProject, restoreProject } from './panel-files.mjs';

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
    await state.inbox.add((await droppedGroups(dt)).flatMap((g) => g.files));
  });
  $('inbox-file').addEventListener('change', () => {
    state.inbox.add([...$('inbox-file').files]);
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
  bindRecorder();
  const live = new LivePreview({
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
  state.inbox = makeInbox();
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
  await state.inbox.open();
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
  state.live.client = state.client;
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
