// The exporters' view of a trained classifier: the engine's ops and weights read back out
// of wasm memory (tt_net_op: the C struct, by member through src/abi.h) as plain records, for the whole path from
// image to probabilities (the backbone's frozen ops up to the cached boundary, then the
// classifier's trainable blocks and head) or for the trainable part alone. The TensorFlow.js
// and ONNX writers (export-tfjs.mjs, export-onnx.mjs) turn these records into files.
import { EngineError } from './errors.mjs';

/**
 * Ops first..last of an engine net: { name, type (src/abi.h's name, or 'type N' for one the
 * module does not name),
 * in0, in1, kernel, strides, same, pads [t, b, l, r], act (name), shape [h, w, c], scale,
 * offset, weights, bias } with weights and bias copied out of wasm memory.
 */
export function readOps(mod, net, first = 0, last = mod.x.tt_net_count(net) - 1) {
  const ops = [];
  for (let i = first; i <= last; i++) {
    const o = mod.op(net, i),
      d = o.d;
    ops.push({
      name: o.name,
      type: mod.abi.name('op', d.type) ?? `type ${d.type}`,
      in0: d.in0,
      in1: d.in1,
      kernel: [d.kh, d.kw],
      strides: [d.sh, d.sw],
      same: !!d.same,
      pads: [d.pt, d.pb, d.pl, d.pr],
      act: mod.abi.name('act', d.act) ?? `activation ${d.act}`,
      shape: [o.h, o.w, o.c],
      scale: d.scale,
      offset: d.offset,
      weights: mod.floats(o.wt, o.wn),
      bias: mod.floats(o.bias, o.bn),
    });
  }
  return ops;
}

/**
 * What an exporter writes for a classifier: { ops, frozen, labels, input } where ops[0] is
 * the input and every op reads earlier ones (in0/in1 index ops), frozen is how many ops
 * (from the start) belong to the frozen backbone, and input describes what op 0 takes.
 * whole: from the backbone's input image (224x224x3 in [0,1]); else from the boundary
 * activation the classifier caches (the pooled feature for K = 0).
 */
export function exportGraph(classifier, { whole = false } = {}) {
  const c = classifier;
  if (!c.net || !c.report) throw new EngineError('nothing to export: this classifier has not been trained');
  const mod = c.mod;
  const head = readOps(mod, c.net);
  let ops = head,
    frozen = 1;
  if (whole) {
    // The classifier's net is a copy of backbone ops first..cut plus the head, whose input
    // (its op 0) is the backbone's op `boundary`: shifting its indices by `boundary` puts
    // it right after the backbone's ops 0..boundary.
    const back = readOps(mod, c.model.net, 0, c.boundary);
    const shift = (i) => i + c.boundary;
    // (in1 too: ops that read one input ignore it.)
    ops = [...back, ...head.slice(1).map((o) => ({ ...o, in0: shift(o.in0), in1: shift(o.in1) }))];
    frozen = back.length;
  }
  const m = c.model;
  return {
    ops,
    frozen,
    labels: [...c.labels],
    whole,
    input: whole
      ? { shape: [...m.inputShape], range: [0, 1], resize: 'bilinear, align corners', layer: m.layers[0].name }
      : { shape: [...head[0].shape], layer: m.layers[c.boundary].name },
    backbone: { id: m.id, hash: m.weightHash },
    blocks: c.blocks,
  };
}

/**
 * The error every exporter throws for an op type (or, with `act`, an activation) it has no
 * table entry for: it names the op, the format and what is missing.
 */
export function unsupported(format, op, act = false) {
  // (readOps names an op type or activation the module does not know 'type N' / 'activation N'.)
  const what = act
    ? /^activation \d+$/.test(op.act)
      ? `its ${op.act}`
      : `its activation '${op.act}'`
    : /^type \d+$/.test(op.type)
      ? `engine op ${op.type}`
      : `op type '${op.type}'`;
  return new EngineError(`cannot export op '${op.name}' to ${format}: ${what} is not supported by this exporter`);
}

// Path parts of graph-model node names that only wrap (TF-Hub and Keras scopes).
const WRAPPERS = /^(StatefulPartitionedCall|PartitionedCall|sequential|keras_layer|predict|MobilenetV\d|BatchNorm)$/;

/**
 * Keeps names short and unique for formats that want identifiers: a graph node's scope
 * without its TF op and wrappers ('.../MobilenetV2/expanded_conv_16/project/BatchNorm/
 * FusedBatchNormV3' -> 'expanded_conv_16_project'); a layer name stays as it is.
 */
export function namer() {
  const used = new Set();
  return (name) => {
    let parts = String(name).split('/').filter(Boolean);
    if (parts.length > 2) parts = parts.slice(0, -1).filter((p) => !WRAPPERS.test(p));
    const base = (
      parts
        .slice(-2)
        .join('_')
        .replace(/[^A-Za-z0-9_]/g, '_')
        .replace(/^_+/, '') || 'layer'
    ).slice(0, 60);
    let n = base,
      k = 1;
    while (used.has(n)) n = `${base}_${k++}`;
    used.add(n);
    return n;
  };
}

/** A metadata record of labels and input, written beside an export (metadata.json). */
export function exportMetadata(graph, format) {
  return {
    format,
    generatedBy: 'tinytune',
    labels: graph.labels,
    input: graph.whole
      ? {
          shape: graph.input.shape,
          layout: 'NHWC',
          range: graph.input.range,
          resize: graph.input.resize,
          note: 'RGB pixels / 255, resized to the input size (bilinear, align corners); the model does the rest',
        }
      : {
          shape: graph.input.shape,
          layout: 'NHWC',
          layer: graph.input.layer,
          note: "the backbone's activation at this layer, not an image",
        },
    output: { name: 'probabilities', classes: graph.labels.length },
    whole: graph.whole,
    backbone: graph.backbone,
    trainableBlocks: graph.blocks,
  };
}
