// The engine's JS API, the same in Node and browsers: load a tfjs model into the C
// engine, embed and classify images. Everything numeric happens in wasm; this file only
// maps the parsed model onto engine calls and moves bytes.
import { loadModule } from './module.mjs';
import { EngineError } from './errors.mjs';
import { loadModelFiles, resolveConstants } from './tfjs.mjs';

export { EngineError };

export async function createEngine(opts = {}) {
  return new Engine(await loadModule(opts));
}

/**
 * A parsed op (tfjs.mjs) as the C tt_op_desc it becomes (src/abi.h), written into wasm
 * memory for tt_net_add; the caller frees it. inputs: the op's input ops (0 for none).
 */
export function putOpDesc(m, op, inputs = []) {
  const [kh, kw] = op.kernel ?? [0, 0],
    [sh, sw] = op.strides ?? [0, 0],
    [pt, pb, pl, pr] = op.pads ?? [0, 0, 0, 0];
  return m.struct('op_desc', {
    type: m.abi.value('op', op.type),
    in0: inputs[0] ?? 0,
    in1: inputs[1] ?? 0,
    kh,
    kw,
    sh,
    sw,
    same: op.padding === 'same' ? 1 : 0,
    pt,
    pb,
    pl,
    pr,
    channels: op.channels ?? 0,
    act: m.abi.value('act', op.act ?? 'none'),
    scale: op.scale ?? 1,
    offset: op.offset ?? 0,
  });
}

export class Engine {
  constructor(mod) {
    this.mod = mod;
  }

  get simd() {
    return this.mod.simd;
  }
  /** Which build runs: 'relaxed SIMD', 'SIMD' or 'scalar'. */
  get build() {
    return this.mod.relaxed ? 'relaxed SIMD' : this.mod.simd ? 'SIMD' : 'scalar';
  }
  /** Threads the engine runs its kernels on (1 unless a threaded build got its workers). */
  get threads() {
    return this.mod.threads;
  }

  /** Releases the engine's worker threads (it keeps working, on one thread). */
  close() {
    return this.mod.close();
  }

  /**
   * Loads a tfjs graph or layers model (a URL, a directory, or a path to model.json).
   * opts.onProgress(loadedBytes, totalBytes) reports the weight download.
   * opts.integer (default true): frozen layers whose weights ship as uint8 codes multiply
   * by the codes (integer GEMM, ~2x faster; pooled features within ~5e-4 of float32, which
   * range to ~6); false keeps every layer in float32.
   * opts.inputSize: run a fully convolutional model at another input size (one of its
   * card's input.sizes), e.g. 320 for CenterNet's MobileNetV3 instead of its own 512.
   * A model the engine cannot run (an op it lacks, a card that disagrees with the graph)
   * is refused with an EngineError naming the op and node, or the disagreement.
   */
  async loadModel(source, opts = {}) {
    // Every refusal is an EngineError; one from the model's files (or a fetch, or a
    // constant the graph holds) carries the engine's code for bad input, TT_EFORMAT.
    const refused = (e) => {
      const err = e instanceof EngineError ? e : new EngineError(e.message);
      err.code ??= this.mod.abi.value('error', 'format');
      return err;
    };
    let files;
    try {
      files = await loadModelFiles(source, opts.onProgress, { inputSize: opts.inputSize });
    } catch (e) {
      throw refused(e);
    }
    try {
      return Model.build(this.mod, files, opts);
    } catch (e) {
      throw refused(e);
    }
  }

  /** Decoded 8-bit RGB pixels, for tests and thumbnails: {width, height, rgb}. Throws a clear error for a non-image. */
  decodeImage(image) {
    return withImage(this.mod, image, (im) => {
      const { w: width, h: height, rgb } = this.mod.read('image', im);
      return { width, height, rgb: this.mod.u8.slice(rgb, rgb + width * height * 3) };
    });
  }

  memoryBytes() {
    return this.mod.memoryBytes();
  }
}

/**
 * Runs fn(imagePointer) on an image given as encoded file bytes (Uint8Array / ArrayBuffer)
 * or as raw pixels {width, height, data, channels?} (e.g. a canvas ImageData: RGBA).
 */
function withImage(m, image, fn) {
  return m.scoped((take) => {
    let im;
    if (image instanceof Uint8Array || image instanceof ArrayBuffer) {
      const bytes = image instanceof Uint8Array ? image : new Uint8Array(image);
      im = m.ptr(m.x.tt_img_decode(take(m.put(bytes)), bytes.length));
    } else if (image && image.width && image.height && image.data) {
      const ch = image.channels ?? Math.round(image.data.length / (image.width * image.height));
      if (image.data.length !== image.width * image.height * ch)
        throw new EngineError(`pixels: ${image.data.length} bytes do not make a ${image.width}x${image.height} image`);
      im = m.ptr(m.x.tt_img_from_pixels(take(m.put(image.data)), image.width, image.height, ch));
    } else {
      throw new EngineError('an image must be file bytes (Uint8Array) or pixels {width, height, data}');
    }
    try {
      return fn(im);
    } finally {
      m.x.tt_img_delete(im);
    }
  });
}

// The engine's encoding of a weight; int32 only for a graph's integer constants.
function weightEncoding(abi, spec, constant = false) {
  const dtype = spec.quant ? spec.quant.dtype : spec.dtype;
  if (!abi.has('encoding', dtype) || (dtype === 'int32' && !constant))
    throw new EngineError(`weight '${spec.name}' has unsupported dtype ${dtype}`, abi.value('error', 'unsupported'));
  return abi.value('encoding', dtype);
}

/** Augmentation settings: a random resized crop, flips and colour jitter; `true` means these defaults. */
// Mild on purpose: stronger crops and jitter lost accuracy on held-out digits and textures.
export const DEFAULT_AUGMENT = {
  scaleMin: 0.8,
  ratioMin: 3 / 4,
  ratioMax: 4 / 3,
  flip: true,
  brightness: 0.1,
  contrast: 0.1,
  saturation: 0.1,
};

// The augmentation settings as the engine's tt_aug.
function augmentParams(a) {
  const o = { ...DEFAULT_AUGMENT, ...(a && a !== true ? a : {}) };
  return {
    scale_min: o.scaleMin,
    ratio_min: o.ratioMin,
    ratio_max: o.ratioMax,
    flip: o.flip ? 1 : 0,
    brightness: o.brightness,
    contrast: o.contrast,
    saturation: o.saturation,
  };
}

export class Model {
  static build(mod, files, opts) {
    const { parsed, weightBytes } = files;
    const [h, w, c] = parsed.inputShape;
    const net = mod.ptr(mod.x.tt_net_create(h, w, c));
    const model = new Model(mod, net, files, opts);
    try {
      model._addOps();
    } catch (e) {
      model.dispose();
      throw e;
    }
    return model;
  }

  constructor(mod, net, files, opts) {
    this.mod = mod;
    this.net = net;
    this.parsed = files.parsed;
    this.json = files.json;
    this.card = files.card ?? null;
    this.id = this.card?.id ?? opts.id ?? null;
    this.labels = this.card?.labels ?? this.parsed.labels ?? null;
    this.inputShape = this.parsed.inputShape;
    this.weightHash = null;
    this._weightBytes = files.weightBytes;
    this._input = 0;
    this._inputCap = 0;
    this.integer = opts.integer !== false;
  }

  // Decodes a weight spec into a fresh float buffer inside wasm memory (the weight
  // bytes at wp): every weight and graph constant goes through tt_weights_decode.
  _decode(name, wp, take, constant = false) {
    const m = this.mod;
    const spec = this.parsed.specs.get(name);
    if (!spec) throw new EngineError(`weight '${name}' is not in the weights manifest`);
    const count = spec.shape.reduce((a, b) => a * b, 1);
    const dst = take(m.alloc(count * 4));
    const q = spec.quant ?? {};
    m.scoped((t) =>
      m.check(
        m.x.tt_weights_decode(
          t(m.putString(name)),
          wp + spec.offset,
          Math.max(0, this._weightBytes.length - spec.offset),
          count,
          weightEncoding(m.abi, spec, constant),
          q.min ?? 0,
          q.scale ?? 1,
          dst,
        ),
      ),
    );
    return { p: dst, n: count };
  }

  _addOps() {
    const m = this.mod;
    m.scoped((take) => {
      const wp = take(m.put(this._weightBytes));
      const hv = take(m.alloc(8));
      m.x.tt_hash(wp, this._weightBytes.length, hv);
      this.weightHash = [...m.u8.slice(hv, hv + 8)].map((b) => b.toString(16).padStart(2, '0')).join('');
      resolveConstants(this.parsed, (spec) =>
        m.scoped((t) => {
          const { p, n } = this._decode(spec.name, wp, t, true);
          return m.floats(p, n);
        }),
      );
      this.parsed.ops.forEach((op, i) => {
        if (i === 0) return; // the input, created with the net
        m.scoped((t) => {
          const W = op.weights ?? {};
          const k = W.kernel ? this._decode(W.kernel, wp, t) : { p: 0, n: 0 };
          if (W.kernelScale !== undefined) {
            // a PReLU slope from the graph's constant (see tfjs.mjs)
            const f = m.f32.subarray(k.p >> 2, (k.p >> 2) + k.n);
            for (let j = 0; j < f.length; j++) f[j] = f[j] * W.kernelScale + W.kernelShift;
          }
          const b = W.bias ? this._decode(W.bias, wp, t) : { p: 0, n: 0 };
          if (!m.abi.has('op', op.type))
            throw new EngineError(`op '${op.name}' has unsupported type '${op.type}'`, m.abi.value('error', 'unsupported'));
          const d = t(putOpDesc(m, op, op.inputs));
          const idx = m.check(m.x.tt_net_add(this.net, t(m.putString(op.name)), d, k.p, k.n, b.p, b.n));
          if (idx !== i) throw new EngineError(`internal: op '${op.name}' landed at ${idx}, expected ${i}`);
          const kq = W.kernel && this.parsed.specs.get(W.kernel).quant;
          if (this.integer && kq?.dtype === 'uint8') m.check(m.x.tt_net_quantized(this.net, i, kq.min, kq.scale));
          const bn = W.bn;
          if (bn) {
            const dec = (nm) => (nm ? this._decode(nm, wp, t) : { p: 0, n: 0 });
            const g = dec(bn.gamma),
              be = dec(bn.beta),
              mu = dec(bn.mean),
              v = dec(bn.variance);
            m.check(m.x.tt_net_fold_bn(this.net, i, g.p, be.p, mu.p, v.p, mu.n, bn.epsilon ?? 1e-3));
          }
        });
      });
    });
    this._weightBytes = null; // the engine holds decoded copies now
    this.layers = this.parsed.ops.map((op, i) => ({
      index: i,
      name: op.name,
      type: op.type,
      shape: this.shape(i),
      block: op.block ?? null,
      aliases: op.aliases ?? [],
    }));
    this.cut = this.parsed.defaultCut;
  }

  /** [h, w, c] of op i's output. */
  shape(i) {
    return this.shapeOf(this.net, i);
  }

  /** [h, w, c] of op i's output in any engine net (the backbone's, or a classifier's). */
  shapeOf(net, i) {
    const { h, w, c } = this.mod.op(net, i);
    return [h, w, c];
  }

  /** Finds a layer by name (or alias) or index; throws a clear error if there is none. */
  layerIndex(nameOrIndex) {
    if (typeof nameOrIndex === 'number') {
      if (nameOrIndex >= 0 && nameOrIndex < this.layers.length) return nameOrIndex;
    } else {
      const l = this.layers.find((x) => x.name === nameOrIndex || x.aliases.includes(nameOrIndex));
      if (l) return l.index;
    }
    throw new EngineError(`no layer named '${nameOrIndex}' in this model`);
  }

  setCut(nameOrIndex) {
    this.cut = this.layerIndex(nameOrIndex);
  }

  /** Input floats for one image, preprocessed as the model card says (whole image, align corners). */
  _prepare(image, opts) {
    const [h, w] = this.inputShape;
    withImage(this.mod, image, (im) => this.mod.check(this.mod.x.tt_img_sample(im, opts.crop === 'center' ? 1 : 0, w, h, 1, this._input)));
  }

  _ensureInput(n) {
    const per = this.inputShape.reduce((a, b) => a * b, 1) * 4;
    if (this._inputCap < n) {
      this.mod.free(this._input);
      this._input = 0;
      this._inputCap = 0; // if the allocation below fails, the next call allocates again
      this._input = this.mod.alloc(per * n);
      this._inputCap = n;
    }
  }

  /** Runs the network to layer `upto` on a float input already in place; returns a copy. */
  _run(n, upto) {
    const m = this.mod;
    const out = m.ptr(m.x.tt_net_forward(this.net, this._input, n, upto));
    const size = this.layers[upto].shape.reduce((a, b) => a * b, 1);
    return m.floats(out, size * n);
  }

  /** The activation at the cut layer (default: the pooled feature vector) for one image. */
  embed(bytes, opts = {}) {
    const upto = opts.cut === undefined ? this.cut : this.layerIndex(opts.cut);
    this._ensureInput(1);
    this._prepare(bytes, opts);
    return this._run(1, upto);
  }

  /**
   * Activations at layer `upto` for `views` views of one image, decoded once: view 0 is
   * the plain preprocessed image, the others random augmentations drawn from `rng` (a
   * pointer from newRng). Returns a Float32Array of views * size(upto).
   */
  embedViews(bytes, { views = 1, augment = null, rng = 0, upto = this.cut } = {}) {
    const m = this.mod;
    const [h, w, c] = this.inputShape;
    const per = h * w * c * 4;
    this._ensureInput(views);
    withImage(m, bytes, (im) => {
      m.check(m.x.tt_img_sample(im, 0, w, h, 1, this._input));
      if (views > 1) {
        m.scoped((take) => {
          const a = take(m.struct('aug', augmentParams(augment)));
          for (let v = 1; v < views; v++) m.check(m.x.tt_img_sample_aug(im, a, rng, w, h, this._input + v * per));
        });
      }
    });
    return this._run(views, upto);
  }

  /** Runs the network on raw input floats [n,h,w,c] (for tests against a reference). */
  runInput(floats, n = 1, upto = this.layers.length - 1) {
    this._ensureInput(n);
    const want = n * this.inputShape.reduce((a, b) => a * b, 1);
    if (floats?.length !== want) {
      throw new EngineError(
        `runInput: ${floats?.length} floats for a batch of ${n} inputs of ${this.inputShape.join('x')} (${want} expected)`,
      );
    }
    this.mod.f32.set(floats, this._input >> 2);
    return this._run(n, upto);
  }

  /** The model's own head: probabilities with labels, best first. */
  classify(bytes, opts = {}) {
    const probs = this.embed(bytes, { ...opts, cut: this.layers.length - 1 });
    return [...probs]
      .map((p, i) => ({ label: this.labels?.[i] ?? String(i), index: i, probability: p }))
      .sort((a, b) => b.probability - a.probability)
      .slice(0, opts.topk ?? probs.length);
  }

  memoryBytes() {
    return this.mod.x.tt_net_activation_bytes(this.net);
  }

  /** A seeded random generator living in wasm memory (free with freeRng). */
  newRng(seed) {
    return this.mod.ptr(this.mod.x.tt_rng_new(seed >>> 0, Math.floor(seed / 2 ** 32) >>> 0));
  }

  freeRng(p) {
    this.mod.free(p);
  }

  dispose() {
    if (this.net) this.mod.x.tt_net_free(this.net);
    this.mod.free(this._input);
    this.net = 0;
    this._input = 0;
  }
}
