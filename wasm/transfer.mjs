// Transfer learning on a loaded backbone: cache the frozen part's output for each image
// (and augmented views of it), train the last K blocks plus a new head in the engine,
// predict, save and reload. The same code runs in Node, in the CLI and in the page's worker.
// Longer than most files (~950 lines as formatted) because it is one class whose parts (the cache, the
// fit / auto mode / refit loop, calibration, "none of these") all work on the same state:
// its nets, cached activations and labels. What stands apart lives beside it: the saved
// file in classifier-file.mjs, the exporters in export-*.mjs.
import { EngineError } from './errors.mjs';
import { readOps } from './export-ops.mjs';
import { exportTfjs } from './export-tfjs.mjs';
import { exportOnnx } from './export-onnx.mjs';
import { FILE_FORMAT, writeClassifier, openClassifier, checkClassifier, floatsToBase64, readUnknown } from './classifier-file.mjs';

export { readClassifierInfo } from './classifier-file.mjs';

export const TRAIN_DEFAULTS = {
  // learningRate null: 2e-3 for a head alone, 5e-4 once backbone blocks train (measured on
  // held-out digits; a cosine schedule wants a higher peak than a constant rate). epochs
  // null: 50 for a head alone (+0.3 to +5 points over 30 on the accuracy benchmark's dev
  // sets, and a head's epoch is cheap), 30 once blocks train.
  // warmStart: blocks start from a head already trained on the frozen features, for fewer
  // epochs (see fit). Off by default: on the benchmark's test digits (20 a class, seeds 1-3)
  // it cut the blocks' time by ~3x but scored 0.870 (mean of seeds 1-3) against 0.886 for 30
  // epochs from a fresh head, and at 5 a class +2.2 points over the recipe against +8.1.
  epochs: null,
  batchSize: 16,
  optimizer: 'adamw',
  learningRate: null,
  weightDecay: 1e-4,
  momentum: 0.9,
  warmup: 0.05,
  cosine: true,
  labelSmoothing: 0.1,
  balanced: true,
  validationFraction: 0.2,
  patience: 8,
  seed: 1,
  refit: true,
  warmStart: false,
};

// Epochs and peak learning rate for the blocks when they start from a trained head
// (warmStart); 30 and 5e-4 from a fresh one. At 5e-4 the blocks' first steps undid the
// trained head (the first epoch's loss back at a fresh head's, on shifted digits); at 2e-4
// the loss went on falling from where the head left it.
const WARM_EPOCHS = 10,
  WARM_RATE = 2e-4;

const yieldNow = () => new Promise((r) => setTimeout(r, 0));
const dot = (a, b) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};
const normalize = (a) => {
  const n = Math.sqrt(dot(a, a)) || 1;
  for (let i = 0; i < a.length; i++) a[i] /= n;
  return a;
};

/** Floats as IEEE half precision (Uint16Array), rounded by the engine: how cached activations are kept. */
export function toHalf(m, floats) {
  return m.scoped((take) => {
    const x = take(m.put(floats)),
      y = take(m.alloc(floats.length * 2));
    m.x.tt_f16_pack(floats.length, x, y);
    return new Uint16Array(m.x.memory.buffer, y, floats.length).slice();
  });
}

/** Half precision (Uint16Array) back to float32; float32 data as it is. */
export function toFloats(d) {
  if (!(d instanceof Uint16Array)) return d;
  const out = new Float32Array(d.length);
  for (let i = 0; i < d.length; i++) {
    const v = d[i],
      sign = v & 0x8000 ? -1 : 1,
      e = (v >> 10) & 31,
      f = v & 1023;
    out[i] = e === 0 ? sign * f * 2 ** -24 : e === 31 ? (f ? NaN : sign * Infinity) : sign * (1 + f / 1024) * 2 ** (e - 15);
  }
  return out;
}
const size = (shape) => shape.reduce((a, b) => a * b, 1);

// The blocks auto mode may train: two, measured on the accuracy benchmark's dev sets.
const AUTO_MAX_BLOCKS = 2;

/** The backbone's block ids before the cut, in order. */
export function backboneBlocks(model, cut = model.cut) {
  const ids = [];
  for (const l of model.layers.slice(0, cut + 1)) if (l.block && !ids.includes(l.block)) ids.push(l.block);
  return ids;
}

/**
 * Where the trainable part starts for K trainable blocks: the first op of the K-th last
 * inverted-residual block before the cut (K = 0: nothing of the backbone trains).
 * Returns { first, boundary } with boundary = first - 1, the cached activation.
 */
export function trainableRange(model, blocks, cut = model.cut) {
  if (blocks === 'auto') blocks = Math.min(AUTO_MAX_BLOCKS, backboneBlocks(model, cut).length);
  if (!Number.isInteger(blocks) || blocks < 0) throw new EngineError(`trainable blocks must be a whole number >= 0, got ${blocks}`);
  if (blocks === 0) return { first: cut + 1, boundary: cut };
  const ids = backboneBlocks(model, cut);
  if (blocks > ids.length) throw new EngineError(`the backbone has ${ids.length} blocks before the cut; cannot train ${blocks}`);
  const keep = new Set(ids.slice(ids.length - blocks));
  const first = model.layers.findIndex((l) => keep.has(l.block));
  return { first, boundary: first - 1 };
}

/**
 * Refuses a training set fit() cannot train on (fewer than 2 classes, a class without
 * images), naming the classes. labels: class names; counts: images per class.
 */
export function checkTrainable(labels, counts) {
  if (labels.length < 2)
    throw new EngineError(`training needs at least 2 classes; there ${labels.length === 1 ? 'is 1' : `are ${labels.length}`}`);
  const empty = labels.filter((_, k) => !counts[k]);
  if (empty.length)
    throw new EngineError(
      `class${empty.length > 1 ? 'es' : ''} ${empty.map((l) => `'${l}'`).join(', ')} ha${empty.length > 1 ? 've' : 's'} no images`,
    );
}

/** Float arrays joined into one Float32Array. */
export const concatFloats = (arrays) => {
  const out = new Float32Array(arrays.reduce((a, x) => a + x.length, 0));
  let at = 0;
  for (const x of arrays) (out.set(x, at), (at += x.length));
  return out;
};
export class Classifier {
  /**
   * opts: labels (class names), blocks (K, default 0), hidden (units of a hidden ReLU
   * layer, default 256; 0 for a linear head), dropout, views (cached views per image: 1 plain + the
   * rest augmented), augment (true, false or settings), seed.
   */
  constructor(model, opts = {}) {
    const labels = opts.labels ?? [];
    if (new Set(labels).size !== labels.length) throw new EngineError('class names must be unique');
    this.model = model;
    this.mod = model.mod;
    this.labels = [...labels];
    // 'auto' (the default) caches the activations K = 2 blocks need and decides at fit()
    // between a head alone and the last blocks (see fit).
    this.auto = (opts.blocks ?? 'auto') === 'auto';
    this.blocks = this.auto
      ? Math.min(AUTO_MAX_BLOCKS, backboneBlocks(model, model.layerIndex(opts.cut ?? model.cut)).length)
      : opts.blocks;
    // A hidden layer with dropout and cached augmented views beat the Teachable Machine
    // recipe on held-out digits in our measurements (tests/transfer.test.mjs).
    this.hidden = opts.hidden ?? 256;
    this.dropout = opts.dropout ?? (this.hidden ? 0.2 : 0);
    this.augment = opts.augment ?? true;
    this.views = this.augment ? (opts.views ?? 4) : 1;
    this.seed = opts.seed ?? 1;
    // half: cache activations in half precision (half the memory; see src/kernels/half.c).
    // Opt-in until the accuracy benchmark shows it changes nothing beyond noise.
    this.half = opts.half ?? false;
    // The classifier keeps its own cut, so loading or training one never moves the model's.
    this.cut = model.layerIndex(opts.cut ?? model.cut);
    this.cutName = model.layers[this.cut].name;
    this._setBlocks(this.blocks);
    this.cacheBoundary = this.boundary; // where the cached activations of `images` are
    this.cacheBlocks = this.blocks;
    this.images = []; // { label, name, data: Float32Array(views * size) }
    this.skipped = []; // { name, reason }
    this.report = null;
    this._rng = model.newRng(this.seed);
    this.net = opts._net ?? this._buildNet(labels.length);
  }

  _setBlocks(blocks) {
    const { first, boundary } = trainableRange(this.model, blocks, this.cut);
    this.blocks = blocks;
    this.first = first;
    this.boundary = boundary;
    this.inputShape = this.model.layers[boundary].shape;
  }

  _buildNet(classes) {
    const m = this.mod;
    if (classes < 1) return 0;
    const net = m.ptr(m.x.tt_net_slice(this.model.net, this.first, this.cut));
    try {
      let last = m.x.tt_net_count(net) - 1;
      m.scoped((take) => {
        if (this.hidden) {
          last = m.check(m.x.tt_net_add_dense(net, take(m.putString('head/hidden')), last, this.hidden, 1, this.seed));
          if (this.dropout > 0) {
            const d = take(m.struct('op_desc', { type: m.abi.value('op', 'dropout'), in0: last, scale: this.dropout }));
            last = m.check(m.x.tt_net_add(net, take(m.putString('head/dropout')), d, 0, 0, 0, 0));
          }
        }
        m.check(m.x.tt_net_add_dense(net, take(m.putString('head/logits')), last, classes, 0, this.seed + 1));
      });
    } catch (e) {
      m.x.tt_net_free(net);
      throw e;
    }
    return net;
  }

  /**
   * Runs the frozen part on an image (and its augmented views) and caches the result.
   * An unreadable image is skipped and recorded, not thrown: returns false with the reason
   * in `skipped`.
   */
  addImage(bytes, label, name = `image ${this.images.length + this.skipped.length + 1}`) {
    const k = this._classIndex(label);
    try {
      let data = this.model.embedViews(bytes, { views: this.views, augment: this.augment, rng: this._rng, upto: this.cacheBoundary });
      if (this.half) data = toHalf(this.mod, data);
      this.images.push({ label: k, name, data });
      return true;
    } catch (e) {
      if (!(e instanceof EngineError)) throw e;
      this.skipped.push({ name, reason: e.message });
      return false;
    }
  }

  /**
   * Adds an image's activations computed elsewhere (a feature cache, a worker): what
   * addImage caches, `views` views at this classifier's cache boundary (float32, or half
   * precision as a Uint16Array). Throws an EngineError for an unknown class or data of
   * another size.
   */
  addFeatures(data, label, name = `image ${this.images.length + this.skipped.length + 1}`) {
    const k = this._classIndex(label);
    const per = size(this.model.layers[this.cacheBoundary].shape) * this.views;
    if (!(data instanceof Float32Array || data instanceof Uint16Array) || data.length !== per) {
      throw new EngineError(`image '${name}' holds ${data?.length} floats, not the ${per} of ${this.views} view(s) at the cut`);
    }
    this.images.push({ label: k, name, data: this.half && data instanceof Float32Array ? toHalf(this.mod, data) : data });
  }

  // A class name or index as its index; an unknown one is an error naming it.
  _classIndex(label) {
    const k = typeof label === 'number' ? label : this.labels.indexOf(label);
    if (!Number.isInteger(k) || k < 0 || k >= this.labels.length) throw new EngineError(`unknown class '${label}'`);
    return k;
  }

  counts() {
    const c = this.labels.map(() => 0);
    for (const im of this.images) c[im.label]++;
    return c;
  }

  /**
   * Trains. opts: TRAIN_DEFAULTS fields, plus onEpoch(metrics), onBatch(progress),
   * signal (AbortSignal) and batchesPerTick (work between yields to the event loop).
   * With a validation fraction and `refit` (the default), training runs twice: first on
   * the training split, where validation chooses what trains (auto mode), estimates the
   * accuracy and calibrates the probabilities (a temperature), then again from fresh
   * weights on every image, so the model a user gets has learned from all of their
   * images. The refit runs the whole schedule: refitting only to the epoch of the best
   * validation loss lost 2 points on the benchmark's dev sets (that loss turns up early
   * on a handful of validation images while accuracy still climbs). The
   * report's validation figures are the first run's: an honest estimate, not the refit
   * model's (optimistic) score on images it trained on. Metrics passed to onEpoch/onBatch
   * carry `phase`: 'validate' or 'refit'. Cancelling keeps the best model so far.
   * Resolves to a report; a non-finite loss rejects with the engine's message and
   * `error.report` (the best weights so far are kept).
   */
  async fit(opts = {}) {
    const o = { ...TRAIN_DEFAULTS, ...opts };
    checkTrainable(this.labels, this.counts());
    if (!this.mod.abi.has('optimizer', o.optimizer))
      throw new EngineError(`unknown optimizer '${o.optimizer}' (${Object.keys(this.mod.abi.enums.optimizer).join(', ')})`);
    const per = size(this.model.layers[this.cacheBoundary].shape) * this.views;
    const odd = this.images.find((im) => im.data?.length !== per);
    if (odd)
      throw new EngineError(`image '${odd.name}' holds ${odd.data?.length} floats, not the ${per} of ${this.views} view(s) at the cut`);
    const started = performance.now();
    const validate = o.validationFraction > 0;
    // The default budget, 1 s an image (at least 30 s), lets the last two blocks train on
    // 2 cores: they gained 5 points over a head alone on the benchmark's digits (20 a class)
    // and took 147 s for 200 images, where a head alone takes ~35 s.
    const budget = o.timeBudget ?? Math.max(30, this.images.length);
    const auto = this.auto ? { budget, tried: [], blocks: null, why: '' } : null;
    // Warm start (linear probe, then fine-tune): blocks train from the head a K = 0 run
    // left, for WARM_EPOCHS instead of 30 from a random head, whose first epochs' gradients
    // only push noise into the pre-trained blocks. Auto mode trains that head anyway; with
    // manual blocks it is a cheap first phase on the pooled features (not a candidate).
    const target = this.auto ? (this.cacheBlocks ?? this.blocks) : this.blocks;
    const warm = o.warmStart && target > 0;
    const candidates = this.auto || warm ? [...new Set([0, target])] : [target];
    let first = null,
      kept = 0,
      head0 = null;
    for (const K of candidates) {
      if (candidates.length > 1) {
        // Each candidate starts from a fresh net; a net that no candidate keeps is freed.
        this._setBlocks(K);
        if (this.net && this.net !== kept) this.mod.x.tt_net_free(this.net);
        this.net = 0;
      }
      if (!this.net) this.net = this._buildNet(this.labels.length);
      if (K && head0) this._setHead(head0.weights);
      const lr = o.learningRate ?? (K ? (head0 ? WARM_RATE : 5e-4) : 2e-3),
        epochs = o.epochs ?? (K ? (head0 ? WARM_EPOCHS : 30) : 50);
      // Auto mode tries the blocks only if one batch says they fit the time budget.
      const probe =
        this.auto && K > 0
          ? (secondsPerBatch, p) => {
              const estimate = secondsPerBatch * p.batchesPerEpoch * epochs * (validate && o.refit ? 2 : 1);
              const left = budget - (performance.now() - started) / 1000;
              if (estimate <= left) return true;
              auto.tried.push({
                blocks: K,
                skipped: `training ${K} blocks would take about ${estimate.toFixed(0)} s, more than the ${left.toFixed(0)} s left of the ${budget.toFixed(0)} s budget`,
              });
              return false;
            }
          : null;
      const inputs = this._inputsAt(this.boundary);
      const r = await this._train({ ...o, learningRate: lr, epochs }, validate && o.refit ? 'validate' : 'train', inputs, probe);
      const fallBack = () => {
        this.mod.x.tt_net_free(this.net);
        this.net = kept;
        this._setBlocks(first.blocks);
      };
      if (r.probeFailed) {
        fallBack();
        continue;
      }
      if (warm && !K && !r.cancelled && !r.error) head0 = { weights: this._head(), inputs, history: r.history };
      if (!this.auto && K !== target) {
        // Manual blocks: the head phase only seeds the blocks' run.
        if (r.cancelled || r.error) {
          first = { ...r, learningRate: lr, epochs, inputs };
          kept = this.net;
          break;
        }
        this.mod.x.tt_net_free(this.net);
        this.net = 0;
        continue;
      }
      if (auto) auto.tried.push({ blocks: K, validationAccuracy: r.validationAccuracy, validationLoss: r.bestValLoss, seconds: r.seconds });
      if (first && (r.cancelled || r.error)) {
        // A later candidate that was cancelled or diverged leaves the earlier one's model.
        if (r.error) auto.tried.at(-1).error = r.error.message;
        fallBack();
        first.cancelled ||= r.cancelled;
        break;
      }
      // Better: more validation images right; on a tie, the lower validation loss; without
      // validation, the blocks.
      const better =
        !first ||
        !r.nVal ||
        r.validationAccuracy > first.validationAccuracy ||
        (r.validationAccuracy === first.validationAccuracy && r.bestValLoss < first.bestValLoss);
      if (better) {
        if (kept) this.mod.x.tt_net_free(kept);
        kept = this.net;
        first = { ...r, learningRate: lr, epochs, inputs };
      } else {
        fallBack();
      }
      if (r.cancelled || r.error) break;
    }
    if (auto) {
      auto.blocks = first.blocks;
      const v = auto.tried.filter((t) => t.validationAccuracy != null);
      auto.why =
        v.length > 1
          ? `validation accuracy ${v.map((t) => `K=${t.blocks} ${t.validationAccuracy.toFixed(3)}`).join(', ')}`
          : (auto.tried.find((t) => t.skipped)?.skipped ??
            (first.nVal ? 'the only candidate' : 'too few images to validate: blocks train when they fit the budget'));
      auto.summary = `K=${first.blocks}`;
    }
    if (!this.auto && head0) first.history = [...head0.history, ...first.history];
    const report = { ...first, auto, temperature: 1, refit: null };
    if (first.nVal) report.temperature = this._calibrate(first.valIndices, first.inputs);
    for (const k of ['valIndices', 'bestValLoss', 'inputs', 'learningRate', 'epochs']) delete report[k];
    if (o.refit && first.nVal && !first.cancelled && !first.error) {
      // A fresh net on every image; the first run's net stays until the refit succeeds,
      // so a cancel or a failure loses nothing. Blocks that started from a trained head
      // refit the same way: a head on every image first, then the blocks from it.
      const epochs = first.epochs,
        blocks = this.blocks;
      let second = null,
        init = null;
      if (blocks && head0) {
        this._setBlocks(0);
        this.net = this._buildNet(this.labels.length);
        second = await this._train(
          { ...o, learningRate: o.learningRate ?? 2e-3, epochs: o.epochs ?? 50, validationFraction: 0, patience: 0 },
          'refit',
          head0.inputs,
        );
        if (!second.cancelled && !second.error) init = this._head();
        this.mod.x.tt_net_free(this.net);
        this._setBlocks(blocks);
      }
      if (!second || init) {
        this.net = this._buildNet(this.labels.length);
        if (init) this._setHead(init);
        const head = second;
        second = await this._train(
          { ...o, learningRate: first.learningRate, epochs, validationFraction: 0, patience: 0 },
          'refit',
          first.inputs,
        );
        if (head) second.history = [...head.history, ...second.history];
      } else {
        this.net = 0;
      }
      if (second.cancelled || second.error) {
        if (this.net) this.mod.x.tt_net_free(this.net);
        this.net = kept;
        report.cancelled = true;
      } else {
        this.mod.x.tt_net_free(kept);
        report.refit = { epochs, images: second.nTrain, trainLoss: second.history.at(-1)?.trainLoss ?? null };
        report.history = [...first.history, ...second.history];
      }
    }
    if (!first.error) this._setTemperature(report.temperature);
    this._fitUnknown(first.inputs);
    report.seconds = (performance.now() - started) / 1000;
    report.settings.learningRate = first.learningRate;
    report.settings.epochs = first.epochs;
    report.blocks = this.blocks;
    this.report = report;
    if (report.error) {
      const error = report.error;
      delete report.error;
      error.report = report;
      throw error;
    }
    delete report.error;
    return report;
  }

  // The cached images' activations at another boundary (a later one: the frozen copies of
  // the blocks between run on every view), or the cache itself.
  _inputsAt(boundary) {
    if (boundary === this.cacheBoundary) return this.images.map((im) => im.data);
    const out = [],
      chunk = 16,
      per = size(this.model.layers[boundary].shape) * this.views;
    for (let i = 0; i < this.images.length; i += chunk) {
      const part = this.images.slice(i, i + chunk);
      const y = this._frozen(concatFloats(part.map((im) => toFloats(im.data))), this.cacheBoundary, boundary, part.length * this.views);
      part.forEach((_, j) => out.push(y.subarray(j * per, (j + 1) * per)));
    }
    return out;
  }

  // Runs the backbone's ops from+1..to on n activations of op `from`.
  _frozen(act, from, to, n) {
    const m = this.mod;
    this._slices ??= new Map();
    const key = `${from}:${to}`;
    if (!this._slices.has(key)) this._slices.set(key, m.ptr(m.x.tt_net_slice(this.model.net, from + 1, to)));
    const net = this._slices.get(key);
    const out = size(this.model.layers[to].shape);
    return m.scoped((take) => {
      const x = take(m.put(act));
      return m.floats(m.ptr(m.x.tt_net_forward(net, x, n, m.x.tt_net_count(net) - 1)), out * n);
    });
  }

  // One trainer run over every cached image (the engine splits off validation).
  async _train(o, phase, inputs, probe = null) {
    const m = this.mod;
    const per = size(this.inputShape) * this.views;
    const n = inputs.length;
    const history = [];
    const started = performance.now();
    let cancelled = false,
      error = null,
      last = null;
    // All inputs in half precision if any image holds them so (float32 ones are rounded).
    const half = inputs.some((d) => d instanceof Uint16Array);
    const x = m.alloc(n * per * (half ? 2 : 4)),
      y = m.alloc(n * 4);
    let cfg = 0,
      out = 0,
      tr = 0;
    try {
      if (!half) inputs.forEach((d, i) => m.f32.set(d, (x >> 2) + i * per));
      else {
        inputs.forEach((d, i) => {
          const h = d instanceof Uint16Array ? d : toHalf(m, d); // may grow memory: before the view
          new Uint16Array(m.x.memory.buffer, x + i * per * 2, per).set(h);
        });
      }
      m.i32.set(
        this.images.map((im) => im.label),
        y >> 2,
      );
      cfg = m.struct('train_cfg');
      m.x.tt_train_defaults(cfg);
      m.abi.write(m.x.memory, 'train_cfg', cfg, {
        epochs: o.epochs,
        batch: o.batchSize,
        optimizer: m.abi.value('optimizer', o.optimizer),
        lr: o.learningRate,
        weight_decay: o.weightDecay,
        momentum: o.momentum,
        warmup: o.warmup,
        cosine: o.cosine ? 1 : 0,
        label_smoothing: o.labelSmoothing,
        balanced: o.balanced ? 1 : 0,
        val_fraction: o.validationFraction,
        patience: o.patience,
        seed: o.seed,
      });
      out = m.struct('progress');
      tr = m.ptr(m.x[half ? 'tt_trainer_new_half' : 'tt_trainer_new'](this.net, cfg, this.labels.length, x, n, this.views, y));
      let epochStart = performance.now();
      if (probe) {
        const t0 = performance.now();
        const rc = m.x.tt_trainer_run(tr, 1, out);
        if (rc >= 0 && !probe((performance.now() - t0) / 1000, { batchesPerEpoch: m.read('progress', out).batches_per_epoch }))
          return { probeFailed: true };
      }
      for (;;) {
        const rc = m.x.tt_trainer_run(tr, o.batchesPerTick ?? 8, out);
        const v = m.read('progress', out);
        const p = {
          phase,
          epoch: v.epoch,
          batch: v.batch,
          batchesPerEpoch: v.batches_per_epoch,
          done: !!v.done,
          stoppedEarly: !!v.stopped_early,
          bestEpoch: v.best_epoch,
          trainLoss: v.train_loss,
          trainAccuracy: v.train_acc,
          valLoss: v.val_loss,
          valAccuracy: v.val_acc,
          bestValLoss: v.best_val_loss,
          learningRate: v.lr,
          nTrain: v.n_train,
          nVal: v.n_val,
          epochs: o.epochs,
        };
        last = p;
        if (rc < 0) {
          error = new EngineError(m.lastError(), rc);
          break;
        }
        if (rc >= 1) {
          const now = performance.now();
          const e = {
            phase,
            epoch: p.epoch + 1,
            epochs: o.epochs,
            trainLoss: p.trainLoss,
            trainAccuracy: p.trainAccuracy,
            valLoss: p.valLoss,
            valAccuracy: p.valAccuracy,
            learningRate: p.learningRate,
            seconds: (now - epochStart) / 1000,
          };
          epochStart = now;
          history.push(e);
          o.onEpoch?.(e, p);
        } else {
          o.onBatch?.(p);
        }
        if (rc === 2) break;
        await yieldNow();
        if (o.signal?.aborted) {
          m.x.tt_trainer_stop(tr);
          cancelled = true;
          break;
        }
      }
      const C = this.labels.length;
      const { nVal, flat, valIndices } = m.scoped((take) => {
        const cm = take(m.alloc(C * C * 4)),
          vi = take(m.alloc(n * 4));
        const nVal = m.check(m.x.tt_trainer_confusion(tr, cm));
        const nv = m.check(m.x.tt_trainer_validation(tr, vi));
        return { nVal, flat: [...m.i32.slice(cm >> 2, (cm >> 2) + C * C)], valIndices: [...m.i32.slice(vi >> 2, (vi >> 2) + nv)] };
      });
      const confusion = this.labels.map((_, r) => flat.slice(r * C, (r + 1) * C));
      const perClass = confusion.map((row, k) => {
        const t = row.reduce((a, b) => a + b, 0);
        return t ? row[k] / t : null;
      });
      const correct = confusion.reduce((a, row, k) => a + row[k], 0);
      return {
        labels: [...this.labels],
        history,
        bestEpoch: last.bestEpoch + 1,
        stoppedEarly: last.stoppedEarly,
        cancelled,
        error,
        validationAccuracy: nVal ? correct / nVal : null,
        confusion,
        perClassAccuracy: perClass,
        valIndices,
        nTrain: last.nTrain,
        nVal,
        views: this.views,
        blocks: this.blocks,
        skipped: [...this.skipped],
        bestValLoss: last.bestValLoss,
        seconds: (performance.now() - started) / 1000,
        settings: { ...o, onEpoch: undefined, onBatch: undefined, signal: undefined },
      };
    } finally {
      if (tr) m.x.tt_trainer_free(tr);
      for (const p of [x, y, cfg, out]) m.free(p);
    }
  }

  /** Probabilities for the plain view of each of several activations at the boundary, in one batch. */
  predictActivations(acts) {
    const m = this.mod,
      C = this.labels.length,
      F = size(this.inputShape);
    if (!acts.length) return [];
    return m.scoped((take) => {
      const x = take(m.alloc(acts.length * F * 4)),
        p = take(m.alloc(acts.length * C * 4));
      acts.forEach((a, i) => m.f32.set(a.subarray(0, F), (x >> 2) + i * F));
      m.check(m.x.tt_predict(this.net, x, acts.length, p));
      const all = m.floats(p, acts.length * C);
      return acts.map((_, i) => all.subarray(i * C, (i + 1) * C));
    });
  }

  // Temperature scaling (Guo et al. 2017): the T that minimises the validation images'
  // negative log-likelihood of softmax(logits / T). The logits are log-probabilities up
  // to a constant, which softmax ignores. Searched on log T by golden section.
  _calibrate(valIndices, inputs) {
    const probs = this.predictActivations(valIndices.map((i) => toFloats(inputs[i].subarray(0, size(this.inputShape)))));
    const labels = valIndices.map((i) => this.images[i].label);
    const nll = (t) => {
      let s = 0;
      probs.forEach((p, j) => {
        let mx = -Infinity;
        for (const q of p) mx = Math.max(mx, Math.log(Math.max(q, 1e-30)) / t);
        let z = 0;
        for (const q of p) z += Math.exp(Math.log(Math.max(q, 1e-30)) / t - mx);
        s -= Math.log(Math.max(p[labels[j]], 1e-30)) / t - mx - Math.log(z);
      });
      return s;
    };
    let a = Math.log(0.05),
      b = Math.log(20);
    const g = (Math.sqrt(5) - 1) / 2;
    for (let it = 0; it < 40; it++) {
      const c = b - g * (b - a),
        d = a + g * (b - a);
      if (nll(Math.exp(c)) < nll(Math.exp(d))) b = d;
      else a = c;
    }
    return Math.exp((a + b) / 2);
  }

  // The weights and biases of this.net's head ops (named head/ by _buildNet), as copies;
  // _setHead writes such copies into a net of the same head shape.
  _headViews() {
    const m = this.mod,
      views = [];
    for (let i = 0; i < m.x.tt_net_count(this.net); i++) {
      const op = m.op(this.net, i);
      if (!op.name.startsWith('head/')) continue;
      for (const [p, k] of [
        [op.wt, op.wn],
        [op.bias, op.bn],
      ])
        if (k) views.push(m.f32.subarray(p >> 2, (p >> 2) + k));
    }
    return views;
  }
  _head() {
    return this._headViews().map((v) => v.slice());
  }
  _setHead(weights) {
    const views = this._headViews();
    if (views.length !== weights.length || views.some((v, i) => v.length !== weights[i].length))
      throw new EngineError('internal: head shapes differ');
    views.forEach((v, i) => v.set(weights[i]));
  }

  // Folds 1/T into the logits layer, so predict, saved files and every export give the
  // calibrated probabilities without knowing about it.
  _setTemperature(t) {
    const m = this.mod,
      op = m.op(this.net, m.x.tt_net_count(this.net) - 1);
    for (const [p, n] of [
      [op.wt, op.wn],
      [op.bias, op.bn],
    ]) {
      const w = m.f32.subarray(p >> 2, (p >> 2) + n);
      for (let i = 0; i < n; i++) w[i] /= t;
    }
    this.temperature = t;
  }

  // The frozen backbone's pooled feature for a boundary activation (for K > 0, the frozen
  // copies of the trainable blocks run on it), L2-normalised.
  _pooled(act, from = this.boundary) {
    const f = act.subarray(0, size(this.model.layers[from].shape));
    return normalize(from === this.cut ? Float32Array.from(f) : this._frozen(f, from, this.cut, 1));
  }

  // "None of these": an image whose pooled feature is further from every class's mean
  // direction than any training image is from its own class's (leave-one-out) is unlike
  // every class. Not a percentile of those: new photos of a known class sit further from
  // the means than the training photos (on held-out crops of real photos, the 5th
  // percentile flagged 45% of known images, the minimum 4%, and half of unseen classes).
  // Of the scores measured there (AUROC, known vs unseen classes), this cosine 0.92, the
  // nearest training image 0.90, the same centred on the training mean 0.83, the top
  // calibrated probability 0.79.
  // inputs: the training inputs at this.boundary (for K = 0 already the pooled features).
  _fitUnknown(inputs) {
    const C = this.labels.length;
    const plain = size(this.inputShape),
      F = size(this.model.layers[this.cut].shape),
      feats = [];
    for (let i = 0; i < inputs.length; i += 32) {
      const x = concatFloats(inputs.slice(i, i + 32).map((d) => toFloats(d.subarray(0, plain)))),
        k = x.length / plain;
      const y = this.boundary === this.cut ? x : this._frozen(x, this.boundary, this.cut, k);
      for (let j = 0; j < k; j++) feats.push(normalize(y.slice(j * F, (j + 1) * F)));
    }
    const sums = Array.from({ length: C }, () => new Float64Array(F)),
      n = new Array(C).fill(0);
    feats.forEach((f, i) => {
      const k = this.images[i].label;
      n[k]++;
      for (let j = 0; j < F; j++) sums[k][j] += f[j];
    });
    const loo = [];
    feats.forEach((f, i) => {
      const k = this.images[i].label;
      if (n[k] < 2) return;
      loo.push(dot(f, normalize(Float32Array.from(sums[k], (v, j) => v - f[j]))));
    });
    loo.sort((a, b) => a - b);
    const threshold = loo.length ? loo[0] : -1;
    this.unknown = { threshold, centroids: sums.map((s) => normalize(Float32Array.from(s))) };
  }

  /** How like its nearest class an image's pooled feature is (cosine), and that class. */
  similarity(act) {
    let best = -Infinity,
      index = -1;
    const f = this._pooled(act);
    this.unknown.centroids.forEach((c, k) => {
      const s = dot(f, c);
      if (s > best) ((best = s), (index = k));
    });
    return { similarity: best, index };
  }

  _answer(act, topk) {
    const probs = this.predictActivations([act])[0];
    const unknown = this.unknown ? this.similarity(act).similarity < this.unknown.threshold : false;
    return [...probs]
      .map((p, i) => ({ label: this.labels[i], index: i, probability: p, unknown }))
      .sort((a, b) => b.probability - a.probability)
      .slice(0, topk);
  }

  /**
   * Scores the classifier on labelled images it did not train on: items are
   * { image, label } (image as for predict). Returns accuracy, per-class accuracy, the
   * confusion matrix (rows: true class), calibration (expected calibration error over 10
   * confidence bins, mean negative log-likelihood), how many were flagged "none of these",
   * and the unreadable images skipped with their reason. A label the classifier lacks is
   * an error naming it: counting such images wrong would hide a misnamed folder.
   */
  evaluate(items) {
    if (!this.net) throw new EngineError('this classifier has not been trained');
    const missing = [...new Set(items.map((it) => it.label))].filter((l) => !this.labels.includes(l));
    if (missing.length) {
      throw new EngineError(
        `the classifier has no class ${missing.map((l) => `'${l}'`).join(', ')} (its classes: ${this.labels.join(', ')})`,
      );
    }
    if (!items.length) throw new EngineError('no images to evaluate');
    const C = this.labels.length;
    const confusion = this.labels.map(() => new Array(C).fill(0));
    const bins = Array.from({ length: 10 }, () => ({ n: 0, conf: 0, correct: 0 }));
    const skipped = [];
    let nll = 0,
      n = 0,
      unknown = 0;
    items.forEach((it, i) => {
      let top;
      try {
        top = this.predict(it.image);
      } catch (e) {
        if (!(e instanceof EngineError)) throw e;
        skipped.push({ name: it.name ?? `image ${i + 1}`, reason: e.message });
        return;
      }
      const k = this.labels.indexOf(it.label),
        best = top[0];
      confusion[k][best.index]++;
      const b = bins[Math.min(9, Math.floor(best.probability * 10))];
      (b.n++, (b.conf += best.probability), (b.correct += best.index === k ? 1 : 0));
      nll -= Math.log(Math.max(1e-12, top.find((t) => t.index === k).probability));
      unknown += best.unknown ? 1 : 0;
      n++;
    });
    if (!n) throw new EngineError(`none of the ${items.length} images could be read`);
    const correct = confusion.reduce((a, row, k) => a + row[k], 0);
    return {
      labels: [...this.labels],
      n,
      accuracy: correct / n,
      confusion,
      perClassAccuracy: confusion.map((row, k) => {
        const t = row.reduce((a, b) => a + b, 0);
        return t ? row[k] / t : null;
      }),
      calibration: {
        ece: bins.reduce((a, b) => a + Math.abs(b.conf - b.correct), 0) / n,
        nll: nll / n,
        temperature: this.temperature ?? 1,
      },
      unknown,
      skipped,
    };
  }

  /**
   * Class probabilities for an image, best first (top k), calibrated on validation. Each
   * entry carries `unknown`: true when the image is unlike every class ("none of these").
   */
  predict(bytes, topk = this.labels.length) {
    if (!this.net) throw new EngineError('this classifier has not been trained');
    return this._answer(this.model.embedViews(bytes, { views: 1, upto: this.boundary }), topk);
  }

  /** Probabilities for an already computed boundary activation (for tests and exports). */
  predictActivation(act) {
    return this.predictActivations([act])[0];
  }

  /** Everything needed to use the result again, in one file. */
  save() {
    if (!this.net) throw new EngineError('nothing to save: this classifier has not been trained');
    const meta = {
      format: FILE_FORMAT,
      version: 1,
      labels: this.labels,
      backbone: { id: this.model.id, hash: this.model.weightHash, inputShape: this.model.inputShape },
      cut: this.cutName,
      boundary: this.model.layers[this.boundary].name,
      blocks: this.blocks,
      head: { hidden: this.hidden, dropout: this.dropout },
      preprocessing: { resize: 'bilinear, align corners', range: [0, 1], size: this.model.inputShape.slice(0, 2) },
      augment: this.augment,
      views: this.views,
      seed: this.seed,
      training: this.report?.settings ?? null,
      metrics: this.report
        ? {
            validationAccuracy: this.report.validationAccuracy,
            bestEpoch: this.report.bestEpoch,
            perClassAccuracy: this.report.perClassAccuracy,
            confusion: this.report.confusion,
            history: this.report.history,
          }
        : null,
      calibration: { temperature: this.temperature ?? 1 },
      unknown: this.unknown ? { threshold: this.unknown.threshold, centroids: floatsToBase64(concatFloats(this.unknown.centroids)) } : null,
      created: new Date().toISOString(),
    };
    return writeClassifier(this.mod, this.net, meta);
  }

  /**
   * Reads a saved classifier onto a loaded backbone; refuses a file made on another, and
   * one whose metadata disagrees with its net (classifier-file.mjs).
   */
  static load(model, bytes) {
    const { net, info } = openClassifier(model.mod, bytes);
    try {
      const labels = checkClassifier(model, net, info);
      const inShape = model.shapeOf(net, 0);
      const c = new Classifier(model, {
        labels,
        cut: info.cut,
        blocks: info.blocks,
        hidden: info.head?.hidden ?? 0,
        dropout: info.head?.dropout ?? 0,
        augment: info.augment,
        views: info.views,
        seed: info.seed,
        _net: net,
      });
      if (model.layers[c.boundary].name !== info.boundary || c.inputShape.join() !== inShape.join()) {
        c.net = 0; // still owned by the catch below
        c.dispose();
        throw new EngineError(
          `saved classifier starts at '${info.boundary}' with a ${inShape.join('x')} input, ` +
            `which does not match this backbone cut at '${info.cut}' (${c.inputShape.join('x')})`,
        );
      }
      c.temperature = info.calibration?.temperature ?? 1;
      if (info.unknown) c.unknown = readUnknown(info.unknown, labels.length, size(model.layers[c.cut].shape));
      c.report = info.metrics ? { ...info.metrics, settings: info.training } : null;
      c.meta = info;
      return c;
    } catch (e) {
      model.mod.x.tt_net_free(net);
      throw e;
    }
  }

  /** Each op of the trainable net: its descriptor, output shape and a copy of its weights (see export-ops.mjs). */
  ops() {
    return readOps(this.mod, this.net);
  }

  /**
   * A TensorFlow.js layers model that tf.loadLayersModel opens, with the class probabilities
   * as output. opts.whole: from the image (224x224x3 RGB in [0,1], resized as the backbone
   * takes it) through the frozen backbone, the trained blocks and the head; else (the
   * default) the trained part alone, whose input is the backbone's activation at the
   * boundary (the pooled feature for K = 0). Returns { modelJson, weightData, metadata }
   * (tfjsFiles in export-tfjs.mjs names them as files).
   */
  exportTfjs(opts = {}) {
    return exportTfjs(this, opts);
  }

  /**
   * The same as an ONNX model (opset 13, NHWC float32 input named 'input', output
   * 'probabilities'). opts.whole as for exportTfjs. Returns { bytes, metadata }.
   */
  exportOnnx(opts = {}) {
    return exportOnnx(this, opts);
  }

  dispose() {
    if (this.net) this.mod.x.tt_net_free(this.net);
    for (const net of this._slices?.values() ?? []) this.mod.x.tt_net_free(net);
    this._slices = null;
    this.model.freeRng(this._rng);
    this.net = 0;
    this._rng = 0;
  }
}
