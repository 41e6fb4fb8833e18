// Writes a classifier (or a backbone up to a layer) as an ONNX model, opset 13, with a
// small protobuf writer of its own: ONNX's schema (onnx/onnx.proto) needs only a handful
// of messages, so no dependency. The input is NHWC float32 like the engine's (an image
// 224x224x3 in [0,1] for a whole model), transposed once to ONNX's NCHW inside the graph;
// the output is 'probabilities' [N, classes]. The ops come from export-ops.mjs; each
// engine op type is one entry of NODES below, each activation one entry of ACTIVATIONS.
import { exportGraph, exportMetadata, unsupported, namer, readOps } from './export-ops.mjs';
import { EngineError } from './errors.mjs';

const FORMAT = 'ONNX';
const OPSET = 13;
const IR_VERSION = 8; // ONNX 1.10+, what opset 13-15 runtimes read

// ---- protobuf: the wire format (varints, length-delimited fields), enough for onnx.proto ----

const enc = new TextEncoder();

function varint(out, v) {
  if (typeof v === 'number' && v >= 0 && Number.isSafeInteger(v)) {
    while (v > 127) (out.push((v % 128) | 128), (v = Math.floor(v / 128)));
    out.push(v);
    return;
  }
  let b = BigInt.asUintN(64, BigInt(v)); // negative int64: ten bytes of two's complement
  while (b > 127n) (out.push(Number(b & 127n) | 128), (b >>= 7n));
  out.push(Number(b));
}

/** A message under construction: fields in order, each as protobuf's wire format writes it. */
class Msg {
  constructor() {
    this.parts = [];
    this.size = 0;
  }
  _push(bytes) {
    this.parts.push(bytes);
    this.size += bytes.length;
    return this;
  }
  _key(field, wire) {
    const k = [];
    varint(k, field * 8 + wire);
    return k;
  }
  int(field, v) {
    const b = this._key(field, 0);
    varint(b, v);
    return this._push(Uint8Array.from(b));
  }
  ints(field, vs) {
    for (const v of vs) this.int(field, v);
    return this;
  }
  float(field, v) {
    const k = this._key(field, 5);
    const out = new Uint8Array(k.length + 4);
    out.set(k);
    new DataView(out.buffer).setFloat32(k.length, v, true);
    return this._push(out);
  }
  bytes(field, data) {
    const k = this._key(field, 2);
    varint(k, data.length);
    this._push(Uint8Array.from(k));
    return this._push(data);
  }
  string(field, s) {
    return this.bytes(field, enc.encode(s));
  }
  msg(field, m) {
    const k = this._key(field, 2);
    varint(k, m.size);
    this._push(Uint8Array.from(k));
    for (const p of m.parts) this._push(p);
    return this;
  }
  toBytes() {
    const out = new Uint8Array(this.size);
    let at = 0;
    for (const p of this.parts) (out.set(p, at), (at += p.length));
    return out;
  }
}

// ---- onnx.proto's messages, by field number ----

const ATTR = { FLOAT: 1, INT: 2, STRING: 3, FLOATS: 6, INTS: 7 };
const DTYPE = { FLOAT: 1, INT64: 7 };

function attribute(name, v) {
  const a = new Msg().string(1, name);
  if (Array.isArray(v)) return a.ints(8, v).int(20, ATTR.INTS);
  if (typeof v === 'string') return a.string(4, v).int(20, ATTR.STRING);
  if (Number.isInteger(v) && !Object.is(v, -0)) return a.int(3, v).int(20, ATTR.INT);
  return a.float(2, v).int(20, ATTR.FLOAT);
}

// NodeProto: input 1, output 2, name 3, op_type 4, attribute 5.
function node(opType, inputs, outputs, name, attrs = {}) {
  const n = new Msg();
  for (const i of inputs) n.string(1, i);
  for (const o of outputs) n.string(2, o);
  n.string(3, name).string(4, opType);
  for (const [k, v] of Object.entries(attrs)) n.msg(5, attribute(k, v));
  return n;
}

// TensorProto: dims 1, data_type 2, name 8, raw_data 9 (little-endian).
function tensor(name, dims, data) {
  const t = new Msg().ints(1, dims);
  if (data instanceof BigInt64Array) t.int(2, DTYPE.INT64);
  else t.int(2, DTYPE.FLOAT);
  t.string(8, name);
  return t.bytes(9, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
}

// ValueInfoProto: name 1, type 2 (TypeProto.tensor_type 1: elem_type 1, shape 2 of dims 1:
// dim_value 1 or dim_param 2).
function valueInfo(name, dims) {
  const shape = new Msg();
  for (const d of dims) shape.msg(1, typeof d === 'string' ? new Msg().string(2, d) : new Msg().int(1, d));
  return new Msg().string(1, name).msg(2, new Msg().msg(1, new Msg().int(1, DTYPE.FLOAT).msg(2, shape)));
}

// ---- the graph ----

// Each entry writes the ONNX nodes of one op and returns its output tensor's name.
// ctx: node(type, inputs, attrs, name) -> output name, init(name, dims, data) -> name,
// nchw(i) (op i's output name in NCHW layout), flat(i) (op i's output as [N, features]),
// inShape(i) (op i's [h, w, c]).
const NODES = {
  conv2d(ctx, o, name) {
    const cin = ctx.inShape(o.in0)[2],
      c = o.shape[2],
      [kh, kw] = o.kernel;
    const w = new Float32Array(o.weights.length); // [kh][kw][cin][cout] -> [cout][cin][kh][kw]
    for (let y = 0; y < kh; y++)
      for (let x = 0; x < kw; x++)
        for (let i = 0; i < cin; i++)
          for (let k = 0; k < c; k++) {
            w[((k * cin + i) * kh + y) * kw + x] = o.weights[((y * kw + x) * cin + i) * c + k];
          }
    return ctx.node(
      'Conv',
      [ctx.nchw(o.in0), ctx.init(`${name}.weight`, [c, cin, kh, kw], w), ctx.init(`${name}.bias`, [c], o.bias)],
      { kernel_shape: o.kernel, strides: o.strides, pads: convPads(ctx.inShape(o.in0), o), dilations: [1, 1], group: 1 },
      name,
    );
  },
  depthwise(ctx, o, name) {
    const c = o.shape[2],
      [kh, kw] = o.kernel;
    const w = new Float32Array(o.weights.length); // [kh][kw][c] -> [c][1][kh][kw]
    for (let y = 0; y < kh; y++)
      for (let x = 0; x < kw; x++) for (let k = 0; k < c; k++) w[(k * kh + y) * kw + x] = o.weights[(y * kw + x) * c + k];
    return ctx.node(
      'Conv',
      [ctx.nchw(o.in0), ctx.init(`${name}.weight`, [c, 1, kh, kw], w), ctx.init(`${name}.bias`, [c], o.bias)],
      { kernel_shape: o.kernel, strides: o.strides, pads: convPads(ctx.inShape(o.in0), o), dilations: [1, 1], group: c },
      name,
    );
  },
  dense(ctx, o, name) {
    const [ih, iw, ic] = ctx.inShape(o.in0),
      c = o.shape[2];
    // Engine and Gemm both take weights [in][out], with `in` the input flattened in NHWC order.
    return ctx.node(
      'Gemm',
      [ctx.flat(o.in0), ctx.init(`${name}.weight`, [ih * iw * ic, c], o.weights), ctx.init(`${name}.bias`, [c], o.bias)],
      {},
      name,
      'flat',
    );
  },
  add: (ctx, o, name) =>
    ctx.isFlat(o.in0)
      ? ctx.node('Add', [ctx.flat(o.in0), ctx.flat(o.in1)], {}, name, 'flat')
      : ctx.node('Add', [ctx.nchw(o.in0), ctx.nchw(o.in1)], {}, name),
  avgpool(ctx, o, name) {
    let x = ctx.nchw(o.in0);
    const [t, b, l, r] = o.pads;
    // Explicit zero padding counts in the average (Keras ZeroPadding2D); SAME's does not.
    if (t || b || l || r)
      x = ctx.node(
        'Pad',
        [x, ctx.init(`${name}.pads`, [8], BigInt64Array.from([0, 0, t, l, 0, 0, b, r].map(BigInt)), false)],
        {},
        `${name}_pad`,
      );
    const shape = ctx.inShape(o.in0);
    return ctx.node(
      'AveragePool',
      [x],
      {
        kernel_shape: o.kernel,
        strides: o.strides,
        pads: convPads([shape[0] + t + b, shape[1] + l + r], { ...o, pads: [0, 0, 0, 0] }),
        count_include_pad: 0,
      },
      name,
    );
  },
  affine(ctx, o, name) {
    const x = ctx.isFlat(o.in0) ? ctx.flat(o.in0) : ctx.nchw(o.in0);
    const m = ctx.node(
      'Mul',
      [x, ctx.init(`${name}.scale`, [], Float32Array.of(o.scale), false)],
      {},
      `${name}_mul`,
      ctx.isFlat(o.in0) ? 'flat' : 'nchw',
    );
    return ctx.node(
      'Add',
      [m, ctx.init(`${name}.offset`, [], Float32Array.of(o.offset), false)],
      {},
      name,
      ctx.isFlat(o.in0) ? 'flat' : 'nchw',
    );
  },
  dropout: (ctx, o) => ctx.same(o.in0), // identity at inference
  act: (ctx, o) => ctx.same(o.in0), // the activation itself is added below, as for every op
  softmax: (ctx, o, name) => ctx.node('Softmax', [ctx.flat(o.in0)], { axis: -1 }, name, 'flat'),
};

// The activation fused into an op, as a node after it (null: none).
const ACTIVATIONS = {
  none: null,
  relu: (ctx, x, name, layout) => ctx.node('Relu', [x], {}, `${name}_relu`, layout),
  relu6: (ctx, x, name, layout) =>
    ctx.node(
      'Clip',
      [x, ctx.init('relu6.min', [], Float32Array.of(0), false), ctx.init('relu6.max', [], Float32Array.of(6), false)],
      {},
      `${name}_relu6`,
      layout,
    ),
};

// ONNX pads [top, left, bottom, right] for TensorFlow's SAME (the extra row/column at the
// end) or VALID, plus the op's explicit zero padding.
function convPads([ih, iw], o) {
  const [pt, pb, pl, pr] = o.pads;
  const side = (n, k, s) => {
    if (!o.same) return [0, 0];
    const out = Math.ceil(n / s),
      total = Math.max((out - 1) * s + k - n, 0);
    return [Math.floor(total / 2), total - Math.floor(total / 2)];
  };
  const [t, b] = side(ih + pt + pb, o.kernel[0], o.strides[0]),
    [l, r] = side(iw + pl + pr, o.kernel[1], o.strides[1]);
  return [pt + t, pl + l, pb + b, pr + r];
}

/**
 * The ONNX model of a graph from export-ops.mjs. softmax: end with the probabilities
 * (else the last op's activation, named 'output'); ops from `frozen` on are the
 * trained ones, listed in the metadata. Returns the file's bytes.
 */
export function toOnnx({ ops, labels, frozen = ops.length }, { softmax = true, name = 'tinytune', meta = {} } = {}) {
  const nodes = [],
    inits = [],
    initNames = new Set(),
    trainable = [];
  let at = 0; // the op being written
  const uniq = namer();
  (uniq('input'), uniq('probabilities'), uniq('output'));
  // Each op's output, by layout: { nchw, nhwc, flat } names, made on first use.
  const outs = [];
  const vectorIn =
    ops[0].shape[0] === 1 && ops[0].shape[1] === 1 && ops.slice(1).every((o) => ['dense', 'dropout', 'act'].includes(o.type));
  const ctx = {
    node(type, inputs, attrs, nodeName, layout = 'nchw') {
      const n = uniq(nodeName);
      nodes.push(node(type, inputs, [n], n, attrs));
      ctx.last = { [layout]: n };
      return n;
    },
    init(n, dims, data, learned = true) {
      if (initNames.has(n)) return n;
      (initNames.add(n), inits.push(tensor(n, dims, data)));
      if (learned && at >= frozen) trainable.push(n);
      return n;
    },
    inShape: (i) => ops[i].shape,
    isFlat: (i) => !!outs[i].flat && !outs[i].nchw && !outs[i].nhwc,
    same: (i) => {
      ctx.last = outs[i];
      return null;
    },
    nchw(i) {
      const o = outs[i];
      if (!o.nchw) {
        if (o.nhwc) o.nchw = ctx.node('Transpose', [o.nhwc], { perm: [0, 3, 1, 2] }, `${o.base}_nchw`);
        else throw new EngineError(`cannot export op '${ops[i].name}' to ONNX: a vector where an image is read`);
      }
      return o.nchw;
    },
    flat(i) {
      const o = outs[i];
      if (!o.flat) {
        const [h, w] = ops[i].shape;
        // [N,C,1,1] flattens as NHWC does; a larger map goes back to NHWC first.
        const src = o.nhwc ?? (h * w === 1 ? o.nchw : ctx.node('Transpose', [o.nchw], { perm: [0, 2, 3, 1] }, `${o.base}_nhwc`));
        o.flat = ctx.node('Flatten', [src], { axis: 1 }, `${o.base}_flatten`, 'flat');
      }
      return o.flat;
    },
  };
  const [h, w, c] = ops[0].shape;
  const inputDims = vectorIn ? ['N', c] : ['N', h, w, c];
  outs[0] = vectorIn ? { flat: 'input', base: 'input' } : { nhwc: 'input', base: 'input' };
  ops.forEach((o, i) => {
    if (i === 0) return;
    at = i;
    const write = NODES[o.type];
    if (!write) throw unsupported(FORMAT, o);
    if (!(o.act in ACTIVATIONS)) throw unsupported(FORMAT, o, true);
    const base = uniq(o.name);
    ctx.last = null;
    write(ctx, o, base);
    let out = { ...ctx.last, base };
    if (ACTIVATIONS[o.act]) {
      const layout = out.flat ? 'flat' : 'nchw';
      ACTIVATIONS[o.act](ctx, out[layout] ?? out.nhwc, base, out[layout] ? layout : 'nhwc');
      out = { ...ctx.last, base };
    }
    outs[i] = out;
  });
  const li = ops.length - 1,
    last = outs[li];
  let outName, outDims;
  if (softmax) {
    const x = ops[li].type === 'softmax' ? ctx.flat(li) : ctx.node('Softmax', [ctx.flat(li)], { axis: -1 }, 'softmax', 'flat');
    nodes.push(node('Identity', [x], ['probabilities'], 'probabilities'));
    ((outName = 'probabilities'), (outDims = ['N', labels.length]));
  } else {
    const [oh, ow, oc] = ops[li].shape;
    const vec = oh * ow === 1;
    const x = vec ? ctx.flat(li) : (last.nhwc ?? ctx.node('Transpose', [last.nchw], { perm: [0, 2, 3, 1] }, 'output_nhwc', 'nhwc'));
    nodes.push(node('Identity', [x], ['output'], 'output'));
    ((outName = 'output'), (outDims = vec ? ['N', oc] : ['N', oh, ow, oc]));
  }
  const graph = new Msg();
  for (const n of nodes) graph.msg(1, n);
  graph.string(2, name);
  for (const t of inits) graph.msg(5, t);
  graph.msg(11, valueInfo('input', inputDims)).msg(12, valueInfo(outName, outDims));
  const model = new Msg()
    .int(1, IR_VERSION)
    .string(2, 'tinytune')
    .string(3, '1')
    .msg(7, graph)
    .msg(8, new Msg().string(1, '').int(2, OPSET));
  // What a trainer (onnxruntime-training's generate_artifacts) needs: which initializers
  // the classifier trained, and the tensor before the softmax (its loss takes logits).
  const props = { labels: JSON.stringify(labels ?? []), trainable_initializers: JSON.stringify(trainable), ...meta };
  if (softmax && ops[li].type !== 'softmax') props.logits = ctx.flat(li);
  for (const [k, v] of Object.entries(props)) model.msg(14, new Msg().string(1, k).string(2, v));
  return model.toBytes();
}

/**
 * A classifier as an ONNX model. opts.whole: from the image (NHWC [N, 224, 224, 3] in
 * [0,1]) to probabilities; else the trainable part, from the boundary activation (NHWC, or
 * [N, features] for the pooled feature). Returns { bytes, metadata }.
 */
export function exportOnnx(classifier, opts = {}) {
  const graph = exportGraph(classifier, opts);
  const metadata = exportMetadata(graph, 'onnx');
  return { bytes: toOnnx(graph, { meta: { metadata: JSON.stringify(metadata) } }), metadata };
}

/**
 * A loaded backbone from its input up to layer `upto` (default: its cut, the pooled
 * feature) as an ONNX model with output 'output': what the benchmark runs in ONNX Runtime.
 */
export function exportBackboneOnnx(model, upto = model.cut) {
  const ops = readOps(model.mod, model.net, 0, model.layerIndex(upto));
  return toOnnx({ ops, labels: [] }, { softmax: false, name: model.id ?? 'backbone' });
}
