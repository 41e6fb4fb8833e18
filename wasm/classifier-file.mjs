// A saved classifier (.ttm): the engine's checksummed model file (src/savefile.c) holding
// the trained net, and the JSON metadata written beside it (labels, backbone, cut,
// settings, metrics, calibration, "none of these" data). The C side validates the net;
// this side treats the metadata as hostile too: a crafted file can say anything, so it
// must agree with the net the engine rebuilt and with the loaded backbone before anything
// runs (Classifier.load in transfer.mjs builds the classifier from what passes).
import { EngineError } from './errors.mjs';

export const FILE_FORMAT = 'tinytune-classifier';

/** The file bytes of a net and its metadata (an object, written as JSON). */
export function writeClassifier(m, net, meta) {
  const bytes = new TextEncoder().encode(JSON.stringify(meta));
  return m.scoped((take) => {
    const mp = take(m.put(bytes)),
      out = take(m.alloc(8));
    m.check(m.x.tt_model_save(net, mp, bytes.length, out));
    const [p, n] = m.i32.slice(out >> 2, (out >> 2) + 2); // see tt_model_save
    take(p);
    return m.u8.slice(p, p + n);
  });
}

/**
 * Parses and checks a saved classifier: the engine validates the file and rebuilds its
 * net; the metadata must be ours and of a version we read. Returns { net, info }; the
 * caller owns net.
 */
export function openClassifier(m, bytes) {
  const { net, meta } = m.scoped((take) => {
    const dp = take(m.put(bytes)),
      out = take(m.alloc(12));
    m.check(m.x.tt_model_load(dp, bytes.length, out));
    const [net, off, len] = m.i32.slice(out >> 2, (out >> 2) + 3); // see tt_model_load
    return { net, meta: new TextDecoder().decode(m.u8.slice(dp + off, dp + off + len)) };
  });
  try {
    let info;
    try {
      info = JSON.parse(meta);
    } catch {
      throw new EngineError('saved model metadata is not valid JSON');
    }
    if (info.format !== FILE_FORMAT) throw new EngineError(`not a tinytune classifier (format '${info.format}')`);
    if (info.version !== 1) throw new EngineError(`saved classifier has version ${info.version}; this engine reads version 1`);
    return { net, info };
  } catch (e) {
    m.x.tt_net_free(net);
    throw e;
  }
}

/** A saved classifier's metadata (labels, backbone id and hash, settings, metrics), without loading it. */
export function readClassifierInfo(engine, bytes) {
  const { net, info } = openClassifier(engine.mod, bytes);
  engine.mod.x.tt_net_free(net);
  return info;
}

/**
 * Refuses a saved classifier whose metadata disagrees with the loaded backbone (weights,
 * input size) or with its own net (labels vs outputs). Returns its labels.
 */
export function checkClassifier(model, net, info) {
  if (info.backbone?.hash !== model.weightHash) {
    throw new EngineError(
      `this classifier was trained on backbone '${info.backbone?.id}' (weights ${info.backbone?.hash}); ` +
        `the loaded backbone is '${model.id}' (weights ${model.weightHash})`,
    );
  }
  // A fully convolutional backbone loads at several input sizes (loadModel's
  // inputSize), with the same weights but other features.
  const trainedAt = info.backbone?.inputShape;
  if (Array.isArray(trainedAt) && trainedAt.join() !== model.inputShape.join()) {
    throw new EngineError(
      `this classifier was trained on '${info.backbone.id}' at a ${trainedAt.join('x')} input; ` +
        `the loaded backbone runs at ${model.inputShape.join('x')} (load it with inputSize ${trainedAt[0]})`,
    );
  }
  const labels = info.labels;
  if (!Array.isArray(labels) || labels.length < 1 || !labels.every((l) => typeof l === 'string')) {
    throw new EngineError('saved classifier: its labels are not a list of class names');
  }
  const outShape = model.shapeOf(net, model.mod.x.tt_net_count(net) - 1);
  if (outShape.join() !== `1,1,${labels.length}`) {
    throw new EngineError(`saved classifier: ${labels.length} labels for a net with ${outShape.join('x')} outputs`);
  }
  return labels;
}

/** Float32 values as base64 (the "none of these" centroids in the metadata). */
export function floatsToBase64(f32) {
  const b = new Uint8Array(f32.buffer, f32.byteOffset, f32.byteLength);
  let s = '';
  for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode(...b.subarray(i, i + 0x8000));
  return btoa(s);
}

/** The "none of these" data of a saved classifier, checked: { threshold, centroids: one Float32Array per class }. */
export function readUnknown(u, classes, features) {
  const bad = (why) => new EngineError(`saved classifier: its "none of these" data ${why}`);
  if (typeof u.threshold !== 'number' || !Number.isFinite(u.threshold)) throw bad('has no finite threshold');
  const floats = (b64, n, what) => {
    let bytes;
    try {
      bytes = Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
    } catch {
      throw bad('is not base64');
    }
    if (bytes.length !== n * 4) throw bad(`holds ${bytes.length} bytes, not the ${n * 4} of ${what}`);
    const f = new Float32Array(bytes.buffer);
    if (!f.every(Number.isFinite)) throw bad('holds a non-finite value');
    return f;
  };
  const all = floats(u.centroids, classes * features, `${classes} classes x ${features} features`);
  return { threshold: u.threshold, centroids: Array.from({ length: classes }, (_, k) => all.subarray(k * features, (k + 1) * features)) };
}
