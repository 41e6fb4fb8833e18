// TensorFlow.js model files -> the compact op list the C engine builds its net from.
//
// Pure JS for browsers and Node alike: nothing here touches the DOM or Node at module
// top level; file reading in Node goes through dynamic imports inside functions.
//
// Two tfjs formats are read: graph models (converted TF SavedModels, node list with
// TF op names) and layers models (Keras model_config). Both are first turned into a
// small intermediate list of "nodes" (one per graph node / Keras layer, same names),
// then one shared pass fuses them into engine ops (BN and activations folded into
// convs, padding into the conv that follows it, identity-like nodes into aliases),
// infers shapes and checks every weight against the op that uses it. Everything is
// refused with an EngineError that names the node, layer or weight at fault.

import { EngineError } from './errors.mjs';

const MAX_ELEMENTS = 2 ** 28; // bigger than any real CNN tensor; stops absurd allocations
// All weights of a model, and any one file read: the engine's 2 GiB of memory must hold
// the weight bytes and their float32 decoding (MobileNetV2 float32 is 14 MB).
const MAX_WEIGHT_BYTES = 512 * 2 ** 20;
const MAX_JSON_BYTES = 64 * 2 ** 20; // model.json, card.json
const MAX_NODES = 65536; // graph nodes or layers (the engine runs at most 4096 ops)
const DTYPE_BYTES = { float32: 4, int32: 4, float16: 2, uint16: 2, uint8: 1, bool: 1 };
const QUANT_DTYPES = new Set(['uint8', 'uint16', 'float16']);
const SHARD_SIZE = 4 * 1024 * 1024; // tensorflowjs_converter's default shard size
const WEIGHTED = new Set(['conv2d', 'depthwise', 'dense']);

/* ------------------------------------------------------------------------------ */
/* Small helpers                                                                   */
/* ------------------------------------------------------------------------------ */

const fail = (msg) => { throw new EngineError(msg); };
const fmtShape = (s) => `[${s.join(',')}]`;
const fmtBytes = (n) => String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ' ');
const product = (s) => s.reduce((a, b) => a * b, 1);
const sameShape = (a, b) => a.length === b.length && a.every((d, i) => d === b[i]);
const isNode = () => typeof globalThis.process?.versions?.node === 'string';

function checkShape(shape, what) {
  if (!Array.isArray(shape) || shape.some((d) => !Number.isInteger(d) || d <= 0)) {
    fail(`${what} has invalid shape ${Array.isArray(shape) ? fmtShape(shape) : JSON.stringify(shape)}: dims must be positive integers`);
  }
  if (product(shape) > MAX_ELEMENTS) {
    fail(`${what} has shape ${fmtShape(shape)} with ${product(shape)} elements, more than the limit of 2^28`);
  }
}

/* ------------------------------------------------------------------------------ */
/* Weights manifest                                                                */
/* ------------------------------------------------------------------------------ */

// Offsets run over the concatenation of all shards of all groups, which is exactly
// the buffer loadWeights returns, so a spec locates its bytes without knowing shards.
function readManifest(manifest) {
  const specs = new Map();
  const groups = [];
  let offset = 0;
  manifest.forEach((group, gi) => {
    const paths = group?.paths;
    if (!Array.isArray(paths) || paths.length === 0 || paths.some((p) => typeof p !== 'string' || !p)) {
      fail(`weights manifest group ${gi + 1} has no valid 'paths' list`);
    }
    if (!Array.isArray(group.weights)) fail(`weights manifest group ${gi + 1} has no 'weights' list`);
    let byteLength = 0;
    for (const w of group.weights) {
      const name = w?.name;
      if (typeof name !== 'string' || !name) fail(`weights manifest group ${gi + 1} has a weight without a name`);
      if (specs.has(name)) fail(`weight '${name}' appears twice in the weights manifest`);
      checkShape(w.shape, `weight '${name}'`);
      if (!Object.hasOwn(DTYPE_BYTES, w.dtype)) fail(`weight '${name}' has unsupported dtype '${w.dtype}'`); // not 'toString'
      const quant = w.quantization ?? null;
      if (quant) {
        if (!QUANT_DTYPES.has(quant.dtype)) fail(`weight '${name}' has unsupported quantization dtype '${quant.dtype}'`);
        if (quant.dtype !== 'float16' && !(Number.isFinite(quant.scale) && Number.isFinite(quant.min))) {
          fail(`weight '${name}' has ${quant.dtype} quantization without a finite scale and min`);
        }
      }
      const size = product(w.shape) * DTYPE_BYTES[quant ? quant.dtype : w.dtype];
      specs.set(name, { name, shape: w.shape.slice(), dtype: w.dtype, quant, group: gi, offset, byteLength: size });
      offset += size;
      byteLength += size;
    }
    groups.push({ paths: paths.slice(), byteLength });
  });
  if (offset > MAX_WEIGHT_BYTES) {
    fail(`the weights manifest declares ${fmtBytes(offset)} bytes of weights, more than the limit of ${fmtBytes(MAX_WEIGHT_BYTES)} (512 MiB)`);
  }
  return { specs, groups };
}

/* ------------------------------------------------------------------------------ */
/* Graph models -> nodes                                                           */
/* ------------------------------------------------------------------------------ */

// Intermediate node kinds (both formats):
//   input {shape} | conv2d/depthwise {strides, padding, kernelSize?, filters?, kernel, bias, bn, act, softmax}
//   dense {units?, kernel, bias, act, softmax} | bn {bn} | bias {bias} | act {act} | softmax
//   add | avgpool {kernel, strides, padding, global} | pad {pads}
//   alias {flat, needs1x1, size?}   (Identity, Squeeze, Flatten, Dropout, ...)
//   scalar {term: {op: 'mul'|'add'|'sub'|'rsub', spec?|value?}}
//   act {act: 'hswish'|'hsigmoid', a, b} (constants as scalar terms: spec?|value?)
//   mean {axes?: spec, keepDims} | gate (two inputs: a tensor and a 1x1xC gate)
//   prelu {alpha: spec, alphaScale, alphaShift} (slope = alpha*alphaScale + alphaShift)

const b64 = (s) => atob(s);
const attrOf = (node, key) => node.attr?.[key];
const attrStr = (node, key) => (attrOf(node, key)?.s != null ? b64(attrOf(node, key).s) : undefined);
const attrInts = (node, key) => attrOf(node, key)?.list?.i?.map(Number);
const attrStrs = (node, key) => (attrOf(node, key)?.list?.s ?? []).map(b64);

function graphConvAttrs(node) {
  const where = `node '${node.name}'`;
  const fmt = attrStr(node, 'data_format') ?? 'NHWC';
  if (fmt !== 'NHWC') fail(`unsupported data_format '${fmt}' at ${where} (only NHWC)`);
  const dil = attrInts(node, 'dilations') ?? [1, 1, 1, 1];
  if (dil.some((d) => d !== 1)) fail(`unsupported dilations ${fmtShape(dil)} at ${where} (only 1)`);
  const padding = attrStr(node, 'padding');
  if (padding !== 'SAME' && padding !== 'VALID') fail(`unsupported padding '${padding}' at ${where} (only SAME or VALID)`);
  const s = attrInts(node, 'strides') ?? [1, 1, 1, 1];
  if (s.length !== 4 || s[0] !== 1 || s[3] !== 1) fail(`unsupported strides ${fmtShape(s)} at ${where}`);
  return { strides: [s[1], s[2]], padding: padding.toLowerCase() };
}

// The trailing fused ops of _FusedConv2D / FusedDepthwiseConv2dNative / _FusedMatMul.
function graphFused(node, w, args) {
  const fused = attrStrs(node, 'fused_ops');
  const out = { bias: null, bn: null, act: 'none' };
  let rest = fused;
  if (rest[0] === 'BiasAdd') {
    out.bias = w(args[0]);
    rest = rest.slice(1);
  } else if (rest[0] === 'FusedBatchNorm') {
    const [gamma, beta, mean, variance] = args.slice(0, 4).map(w);
    out.bn = { gamma, beta, mean, variance, epsilon: attrOf(node, 'epsilon')?.f ?? 1e-3 };
    rest = rest.slice(1);
  }
  if (rest[0] === 'Relu' || rest[0] === 'Relu6') {
    out.act = rest[0].toLowerCase();
    rest = rest.slice(1);
  }
  if (rest.length) fail(`unsupported fused op '${rest[0]}' at node '${node.name}' (fused_ops ${JSON.stringify(fused)})`);
  return out;
}

function readGraph(topo, specs) {
  if (!Array.isArray(topo.node)) fail("not a tfjs graph model: modelTopology has no 'node' list");
  const byName = new Map();
  for (const n of topo.node) {
    if (typeof n?.name !== 'string' || typeof n.op !== 'string') fail(`graph node ${JSON.stringify(n?.name)} has no name or op`);
    if (byName.has(n.name)) fail(`graph node '${n.name}' is defined twice`);
    byName.set(n.name, n);
  }
  const used = new Set();
  const inputsOf = (node) => (node.input ?? []).filter((i) => !i.startsWith('^')).map((i) => {
    const m = /^(.*?)(?::(\d+))?$/.exec(i);
    if (m[2] && m[2] !== '0') fail(`node '${node.name}' reads output ${m[2]} of '${m[1]}'; multi-output ops are not supported`);
    if (!byName.has(m[1])) fail(`node '${node.name}' has input '${m[1]}', which does not exist`);
    return m[1];
  });
  const isConst = (name) => byName.get(name).op === 'Const';
  const weight = (node) => (name) => {
    if (name === undefined) fail(`node '${node.name}' has too few inputs`);
    if (!isConst(name)) fail(`node '${node.name}' expects a constant weight as input '${name}', but that is a '${byName.get(name).op}' node`);
    if (!specs.has(name)) fail(`weight '${name}' referenced by node '${node.name}' is missing from the weights manifest`);
    used.add(name);
    return name;
  };
  // A scalar operand: from the manifest (value known after loading) or inline in the node
  const scalar = (node, name) => {
    const c = byName.get(name);
    if (!specs.has(name)) {
      const t = attrOf(c, 'value')?.tensor;
      const v = t?.floatVal?.[0] ?? t?.intVal?.[0];
      if (v === undefined) fail(`weight '${name}' referenced by node '${node.name}' is missing from the weights manifest`);
      return { value: Number(v) };
    }
    const spec = specs.get(name);
    if (product(spec.shape) !== 1) fail(`unsupported ${node.op} by non-scalar constant '${name}' ${fmtShape(spec.shape)} at node '${node.name}'`);
    used.add(name);
    return { spec: name };
  };

  const { replace, skip } = hardActivations(topo.node, byName, inputsOf, isConst, scalar);
  const nodes = [];
  for (const node of topo.node) {
    const name = node.name;
    if (skip.has(name)) continue;
    if (replace.has(name)) {
      const r = replace.get(name);
      if (r.alpha) r.alpha = weight(node)(r.alpha); // a weight of the op, checked like a kernel
      nodes.push(r);
      continue;
    }
    const ins = inputsOf(node);
    const data = ins.filter((i) => !isConst(i));
    const w = weight(node);
    const base = { name, inputs: data.slice(0, 1) };
    switch (node.op) {
      case 'Const': case 'NoOp':
        continue;
      case 'Placeholder': {
        const dtype = attrOf(node, 'dtype')?.type;
        if (dtype && dtype !== 'DT_FLOAT') fail(`input '${name}' has dtype ${dtype}; only float inputs are supported`);
        const dims = (attrOf(node, 'shape')?.shape?.dim ?? []).map((d) => Number(d.size));
        nodes.push({ ...base, inputs: [], kind: 'input', shape: inputDims(dims, name) });
        continue;
      }
      case 'Conv2D': case '_FusedConv2D':
      case 'DepthwiseConv2dNative': case 'FusedDepthwiseConv2dNative': {
        if (attrStr(node, 'padding') === 'EXPLICIT') fail(`unsupported padding 'EXPLICIT' at node '${name}'`);
        const fused = node.op.startsWith('Fused') || node.op.startsWith('_') ? graphFused(node, w, ins.slice(2)) : { bias: null, bn: null, act: 'none' };
        nodes.push({ ...base, kind: node.op.includes('Depthwise') ? 'depthwise' : 'conv2d', ...graphConvAttrs(node), kernel: w(ins[1]), ...fused });
        continue;
      }
      case 'MatMul': case '_FusedMatMul': {
        if (attrOf(node, 'transpose_a')?.b || attrOf(node, 'transpose_b')?.b) fail(`unsupported transposed MatMul at node '${name}'`);
        const fused = node.op === '_FusedMatMul' ? graphFused(node, w, ins.slice(2)) : { bias: null, bn: null, act: 'none' };
        if (fused.bn) fail(`unsupported fused op 'FusedBatchNorm' on MatMul at node '${name}'`);
        nodes.push({ ...base, kind: 'dense', kernel: w(ins[1]), bias: fused.bias, act: fused.act });
        continue;
      }
      case 'BiasAdd':
        nodes.push({ ...base, kind: 'bias', bias: w(ins[1]) });
        continue;
      case 'FusedBatchNorm': case 'FusedBatchNormV2': case 'FusedBatchNormV3': {
        if (attrOf(node, 'is_training')?.b) fail(`unsupported training-mode batch norm at node '${name}'`);
        const [gamma, beta, mean, variance] = ins.slice(1, 5).map(w);
        nodes.push({ ...base, kind: 'bn', bn: { gamma, beta, mean, variance, epsilon: attrOf(node, 'epsilon')?.f ?? 1e-3 } });
        continue;
      }
      case 'Relu': case 'Relu6':
        nodes.push({ ...base, kind: 'act', act: node.op.toLowerCase() });
        continue;
      case 'Add': case 'AddV2': case 'Mul': case 'Sub': {
        if (data.length === 2 && node.op.startsWith('Add')) { nodes.push({ ...base, inputs: data, kind: 'add' }); continue; }
        // tensor * tensor: squeeze-and-excitation's gate, told from the shapes in buildOps
        if (data.length === 2 && node.op === 'Mul') { nodes.push({ ...base, inputs: data, kind: 'gate' }); continue; }
        if (data.length !== 1 || ins.length !== 2) fail(`unsupported op '${node.op}' at node '${name}': only tensor+tensor adds and tensor-scalar arithmetic are supported`);
        const c = ins.find(isConst);
        const spec = specs.get(c);
        // A vector added to a conv output is a bias (what BiasAdd would have been)
        if (node.op.startsWith('Add') && spec && spec.shape.length === 1 && spec.shape[0] > 1) {
          nodes.push({ ...base, kind: 'bias', bias: w(c) });
          continue;
        }
        const constFirst = ins[0] === c;
        const op = node.op === 'Mul' ? 'mul' : node.op === 'Sub' ? (constFirst ? 'rsub' : 'sub') : 'add';
        nodes.push({ ...base, kind: 'scalar', term: { op, ...scalar(node, c) } });
        continue;
      }
      case 'AvgPool': {
        const k = attrInts(node, 'ksize') ?? [];
        if (k.length !== 4 || k[0] !== 1 || k[3] !== 1) fail(`unsupported ksize ${fmtShape(k)} at node '${name}'`);
        nodes.push({ ...base, kind: 'avgpool', kernel: [k[1], k[2]], ...graphConvAttrs(node), global: false });
        continue;
      }
      case 'Mean': {
        // only over the spatial axes (global average pooling, squeeze-and-excitation)
        const axes = ins[1];
        if (!axes || !isConst(axes)) fail(`unsupported Mean at node '${name}': its axes are not a constant`);
        const t = attrOf(byName.get(axes), 'value')?.tensor;
        let spec = null;
        if (specs.has(axes)) { used.add(axes); spec = axes; } // checked once loaded (resolveConstants)
        else if (!sameShape((t?.intVal ?? []).map(Number).sort(), [1, 2])) fail(`unsupported Mean at node '${name}': only over the spatial axes [1,2]`);
        nodes.push({ ...base, kind: 'mean', axes: spec, keepDims: !!attrOf(node, 'keep_dims')?.b });
        continue;
      }
      case 'Squeeze': {
        const dims = attrInts(node, 'squeeze_dims') ?? [];
        if (dims.some((d) => d !== 1 && d !== 2)) fail(`unsupported squeeze_dims ${fmtShape(dims)} at node '${name}' (only the spatial dims 1, 2)`);
        nodes.push({ ...base, kind: 'alias', flat: true, needs1x1: true });
        continue;
      }
      case 'Reshape':
        // The target shape is a weight we cannot read before loading; a reshape of a
        // 1x1xC tensor can only be a flatten (or a no-op) in these models.
        if (ins[1] && isConst(ins[1]) && specs.has(ins[1])) used.add(ins[1]);
        nodes.push({ ...base, kind: 'alias', flat: true, needs1x1: true });
        continue;
      case 'Identity': case 'StopGradient': case 'Snapshot':
        nodes.push({ ...base, kind: 'alias', flat: false, needs1x1: false });
        continue;
      case 'Softmax':
        nodes.push({ ...base, kind: 'softmax' });
        continue;
      default:
        fail(`unsupported op '${node.op}' at node '${name}'`);
    }
  }
  for (const name of specs.keys()) if (!used.has(name)) fail(`weight '${name}' in the manifest is not used by the graph`);
  for (const n of nodes) if (n.kind !== 'input' && n.inputs.length === 0) fail(`node '${n.name}' has no tensor input`);
  return { nodes, outputs: [] };
}

// MobileNetV3's activations as tfjs graphs spell them, each three or four nodes:
//   hard-swish   Mul(Mul(x, a), Relu6(Add(x, b)))   or Mul(x, Relu6(Add(x, b))) (a = 1)
//   hard-sigmoid Mul(Relu6(Add(x, b)), a)
// (a = 1/6, b = 3, as the graph stores them; resolveConstants reads them). Returns the
// replacement node for each pattern's last node, and the inner nodes to drop; an inner
// node read by anything else breaks the pattern (it then stays separate ops, or fails).
function hardActivations(graph, byName, inputsOf, isConst, scalar) {
  const readers = new Map();
  for (const n of graph) for (const i of n.input ?? []) {
    const k = i.replace(/^\^/, '').replace(/:\d+$/, '');
    readers.set(k, (readers.get(k) ?? 0) + 1);
  }
  const only = (name) => readers.get(name) === 1;
  const split = (n) => {
    const ins = inputsOf(n);
    return { data: ins.filter((i) => !isConst(i)), consts: ins.filter(isConst) };
  };
  // Relu6(Add(x, b)) read only once: {x, b, inner: [add, relu6]}
  const relu6Plus = (name) => {
    const r = byName.get(name);
    if (r?.op !== 'Relu6' || !only(name)) return null;
    const [addName] = split(r).data;
    const add = byName.get(addName);
    if (!add || (add.op !== 'Add' && add.op !== 'AddV2') || !only(addName)) return null;
    const s = split(add);
    if (s.data.length !== 1 || s.consts.length !== 1) return null;
    return { x: s.data[0], b: { node: add, c: s.consts[0] }, inner: [addName, name] };
  };
  const replace = new Map(), skip = new Set();
  for (const n of graph) {
    if (n.op !== 'Mul') continue;
    const { data, consts } = split(n);
    if (data.length === 1 && consts.length === 1) {
      const r = relu6Plus(data[0]);
      if (!r) continue;
      replace.set(n.name, { name: n.name, inputs: [r.x], kind: 'act', act: 'hsigmoid', a: scalar(n, consts[0]), b: scalar(r.b.node, r.b.c) });
      r.inner.forEach((k) => skip.add(k));
    } else if (data.length === 2) {
      for (const [i, j] of [[0, 1], [1, 0]]) {
        const r = relu6Plus(data[i]);
        if (!r) continue;
        const m = byName.get(data[j]);
        let a = null, inner = [];
        if (data[j] === r.x) a = { value: 1 };
        else if (m?.op === 'Mul' && only(data[j])) {
          const s = split(m);
          if (s.data.length === 1 && s.data[0] === r.x && s.consts.length === 1) { a = scalar(m, s.consts[0]); inner = [data[j]]; }
        }
        if (!a) continue;
        replace.set(n.name, { name: n.name, inputs: [r.x], kind: 'act', act: 'hswish', a, b: scalar(r.b.node, r.b.c) });
        [...r.inner, ...inner].forEach((k) => skip.add(k));
        break;
      }
    }
  }
  // PReLU as tf.keras exports it to a graph (MobileFaceNet):
  //   Add(Relu(x), Mul(Sub(x, Abs(x)), c))  = x > 0 ? x : 2c*x
  //   Add(x, Mul(Sub(x, Abs(x)), c))        = x > 0 ? x : (1 + 2c)*x
  // with c a vector of channels. 2c*x is the graph's c*(x - |x|) to the bit (doubling is
  // exact); (1 + 2c)*x rounds once where the graph rounds twice.
  for (const n of graph) {
    if ((n.op !== 'Add' && n.op !== 'AddV2') || replace.has(n.name)) continue;
    const { data } = split(n);
    if (data.length !== 2) continue;
    for (const [i, j] of [[0, 1], [1, 0]]) {
      const m = byName.get(data[j]);
      if (m?.op !== 'Mul' || !only(data[j])) continue;
      const ms = split(m);
      const sub = byName.get(ms.data[0]);
      if (ms.data.length !== 1 || ms.consts.length !== 1 || sub?.op !== 'Sub' || !only(ms.data[0])) continue;
      const [x, absName] = split(sub).data;
      const abs = byName.get(absName);
      if (abs?.op !== 'Abs' || !only(absName) || split(abs).data[0] !== x) continue;
      const p = byName.get(data[i]);
      let shift, inner = [data[j], ms.data[0], absName];
      if (data[i] === x) shift = 1;
      else if (p?.op === 'Relu' && only(data[i]) && split(p).data[0] === x) { shift = 0; inner.push(data[i]); }
      else continue;
      replace.set(n.name, { name: n.name, inputs: [x], kind: 'prelu', alpha: ms.consts[0], alphaScale: 2, alphaShift: shift });
      inner.forEach((k) => skip.add(k));
      break;
    }
  }
  return { replace, skip };
}

function inputDims(dims, name) {
  // [batch, H, W, C] with a free or unit batch
  if (dims.length !== 4 || !(dims[0] === -1 || dims[0] === 1 || dims[0] == null)) {
    fail(`input '${name}' has shape ${fmtShape(dims.map((d) => d ?? -1))}; expected [batch, height, width, channels]`);
  }
  const hwc = dims.slice(1);
  if (hwc.some((d) => d === -1 || d == null)) fail(`input '${name}' has unknown height, width or channels ${fmtShape(hwc.map((d) => d ?? -1))}; only fixed-size inputs are supported`);
  checkShape(hwc, `input '${name}'`);
  return hwc;
}

/* ------------------------------------------------------------------------------ */
/* Layers models -> nodes                                                          */
/* ------------------------------------------------------------------------------ */

const pair = (v, what) => (Array.isArray(v) ? v.map(Number) : v != null ? [Number(v), Number(v)] : fail(`${what} is missing`));

// Keras 2 writes [[[name, node, tensor, kwargs], ...]]; Keras 3 writes
// [{args: [...{config: {keras_history: [name, node, tensor]}}...]}].
function inboundNames(layer, name) {
  const calls = layer.inbound_nodes ?? [];
  if (calls.length === 0) return [];
  if (calls.length > 1) fail(`layer '${name}' is called ${calls.length} times; shared layers are not supported`);
  const call = calls[0];
  if (Array.isArray(call)) return call.map((t) => t[0]);
  const names = [];
  const walk = (v) => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      if (Array.isArray(v.config?.keras_history)) names.push(v.config.keras_history[0]);
      else Object.values(v).forEach(walk);
    }
  };
  walk(call.args ?? call);
  return names;
}

function kerasAct(a, name) {
  const act = typeof a === 'string' ? a : a?.class_name ?? a?.config?.activation ?? 'linear';
  if (act === 'linear' || act === 'relu' || act === 'relu6' || act === 'softmax') return act === 'linear' ? 'none' : act;
  return fail(`unsupported activation '${act}' in layer '${name}'`);
}

function readLayers(topo, specs) {
  const mc = topo.model_config ?? (topo.class_name ? topo : null);
  if (!mc?.config) fail("not a tfjs layers model: modelTopology has no 'model_config'");
  const sequential = mc.class_name === 'Sequential';
  if (!sequential && mc.class_name !== 'Model' && mc.class_name !== 'Functional') fail(`unsupported model class '${mc.class_name}'`);
  const layers = Array.isArray(mc.config) ? mc.config : mc.config.layers;
  if (!Array.isArray(layers) || layers.length === 0) fail('layers model has no layers');

  const used = new Set();
  const weight = (layer, param) => {
    const exact = `${layer}/${param}`;
    let found = specs.has(exact) ? exact : null;
    if (!found) {
      // some converters prefix a scope (model name); accept one unambiguous match
      const hits = [...specs.keys()].filter((k) => k.endsWith(`/${exact}`));
      if (hits.length === 1) found = hits[0];
    }
    if (!found) fail(`layer '${layer}' needs weight '${exact}', which is missing from the weights manifest`);
    used.add(found);
    return found;
  };

  const nodes = [];
  let prev = null;
  layers.forEach((layer, li) => {
    const cfg = layer.config ?? {};
    const name = layer.name ?? cfg.name;
    if (typeof name !== 'string') fail(`layer ${li} has no name`);
    let inputs = sequential ? (prev ? [prev] : []) : inboundNames(layer, name);
    if (sequential && !prev && layer.class_name !== 'InputLayer') {
      // a Sequential model without InputLayer declares its input on the first layer
      const input = { name: `${name}_input`, kind: 'input', inputs: [], shape: inputDims(cfg.batch_input_shape ?? cfg.batch_shape ?? [], `${name}_input`) };
      nodes.push(input);
      inputs = [input.name];
    }
    prev = name;
    const fmt = cfg.data_format ?? 'channels_last';
    if (fmt !== 'channels_last') fail(`unsupported data_format '${fmt}' in layer '${name}' (only channels_last)`);
    const where = `layer '${name}'`;
    const base = { name, inputs };
    const convCommon = () => {
      const dil = pair(cfg.dilation_rate ?? 1, `dilation_rate of ${where}`);
      if (dil.some((d) => d !== 1)) fail(`unsupported dilation_rate ${fmtShape(dil)} in ${where} (only 1)`);
      if (cfg.padding !== 'same' && cfg.padding !== 'valid') fail(`unsupported padding '${cfg.padding}' in ${where}`);
      const act = kerasAct(cfg.activation, name);
      return {
        kernelSize: pair(cfg.kernel_size, `kernel_size of ${where}`), strides: pair(cfg.strides ?? 1, `strides of ${where}`),
        padding: cfg.padding, act: act === 'softmax' ? 'none' : act, softmax: act === 'softmax', bn: null,
      };
    };
    switch (layer.class_name) {
      case 'InputLayer':
        if ((cfg.dtype ?? 'float32') !== 'float32') fail(`input '${name}' has dtype '${cfg.dtype}'; only float32 inputs are supported`);
        nodes.push({ ...base, inputs: [], kind: 'input', shape: inputDims(cfg.batch_input_shape ?? cfg.batch_shape ?? [], name) });
        return;
      case 'Conv2D':
        if ((cfg.groups ?? 1) !== 1) fail(`unsupported groups ${cfg.groups} in ${where} (only 1)`);
        nodes.push({ ...base, kind: 'conv2d', ...convCommon(), filters: cfg.filters, kernel: weight(name, 'kernel'), bias: cfg.use_bias === false ? null : weight(name, 'bias') });
        return;
      case 'DepthwiseConv2D':
        if ((cfg.depth_multiplier ?? 1) !== 1) fail(`unsupported depth_multiplier ${cfg.depth_multiplier} in ${where} (only 1)`);
        nodes.push({ ...base, kind: 'depthwise', ...convCommon(), kernel: weight(name, 'depthwise_kernel'), bias: cfg.use_bias === false ? null : weight(name, 'bias') });
        return;
      case 'Dense': {
        const act = kerasAct(cfg.activation, name);
        nodes.push({ ...base, kind: 'dense', units: cfg.units, act: act === 'softmax' ? 'none' : act, softmax: act === 'softmax', kernel: weight(name, 'kernel'), bias: cfg.use_bias === false ? null : weight(name, 'bias') });
        return;
      }
      case 'BatchNormalization': {
        const axis = Array.isArray(cfg.axis) ? cfg.axis : [cfg.axis ?? -1];
        if (axis.length !== 1 || (axis[0] !== -1 && axis[0] !== 3)) fail(`unsupported batch norm axis ${JSON.stringify(cfg.axis)} in ${where} (only the channel axis)`);
        nodes.push({
          ...base, kind: 'bn',
          bn: {
            gamma: cfg.scale === false ? null : weight(name, 'gamma'), beta: cfg.center === false ? null : weight(name, 'beta'),
            mean: weight(name, 'moving_mean'), variance: weight(name, 'moving_variance'), epsilon: cfg.epsilon ?? 1e-3,
          },
        });
        return;
      }
      case 'ReLU': {
        if ((cfg.negative_slope ?? 0) !== 0 || (cfg.threshold ?? 0) !== 0) fail(`unsupported ReLU with negative_slope/threshold in ${where}`);
        const mv = cfg.max_value ?? null;
        if (mv !== null && mv !== 6) fail(`unsupported ReLU max_value ${mv} in ${where} (only 6 or none)`);
        nodes.push({ ...base, kind: 'act', act: mv === 6 ? 'relu6' : 'relu' });
        return;
      }
      case 'Activation': {
        const act = kerasAct(cfg.activation, name);
        if (act === 'none') nodes.push({ ...base, kind: 'alias', flat: false, needs1x1: false });
        else if (act === 'softmax') nodes.push({ ...base, kind: 'softmax' });
        else nodes.push({ ...base, kind: 'act', act });
        return;
      }
      case 'Add':
        if (inputs.length < 2) fail(`${where} has ${inputs.length} input(s); Add needs at least 2`);
        nodes.push({ ...base, kind: 'add' });
        return;
      case 'AveragePooling2D': {
        if (cfg.padding !== 'same' && cfg.padding !== 'valid') fail(`unsupported padding '${cfg.padding}' in ${where}`);
        const kernel = pair(cfg.pool_size, `pool_size of ${where}`);
        nodes.push({ ...base, kind: 'avgpool', kernel, strides: cfg.strides == null ? kernel : pair(cfg.strides, `strides of ${where}`), padding: cfg.padding, global: false });
        return;
      }
      case 'GlobalAveragePooling2D':
        nodes.push({ ...base, kind: 'avgpool', global: true, padding: 'valid', strides: [1, 1] });
        return;
      case 'ZeroPadding2D': {
        const p = cfg.padding ?? 1;
        const hw = Array.isArray(p) ? p.map((v) => pair(v, `padding of ${where}`)) : [[p, p], [p, p]];
        const pads = Array.isArray(p) && !Array.isArray(p[0]) ? [p[0], p[0], p[1], p[1]] : [hw[0][0], hw[0][1], hw[1][0], hw[1][1]];
        if (pads.some((v) => !Number.isInteger(v) || v < 0)) fail(`invalid padding ${JSON.stringify(p)} in ${where}`);
        nodes.push({ ...base, kind: 'pad', pads });
        return;
      }
      case 'Flatten':
        nodes.push({ ...base, kind: 'alias', flat: true, needs1x1: false });
        return;
      case 'Reshape': {
        const t = cfg.target_shape ?? [];
        if (t.length !== 1) fail(`unsupported Reshape to ${JSON.stringify(t)} in ${where} (only flattening)`);
        nodes.push({ ...base, kind: 'alias', flat: true, needs1x1: false, size: t[0] });
        return;
      }
      case 'Dropout':
        nodes.push({ ...base, kind: 'alias', flat: false, needs1x1: false });
        return;
      default:
        fail(`unsupported layer class '${layer.class_name}' at layer '${name}'`);
    }
  });
  for (const name of specs.keys()) if (!used.has(name)) fail(`weight '${name}' in the manifest is not used by the model`);

  const refs = (list) => (list ?? []).map((r) => (Array.isArray(r) ? r[0] : r));
  const inputs = sequential ? [nodes[0].name] : refs(mc.config.input_layers);
  const outputs = sequential ? [prev] : refs(mc.config.output_layers);
  if (inputs.length !== 1) fail(`model has ${inputs.length} inputs; exactly one is supported`);
  return { nodes, outputs };
}

/* ------------------------------------------------------------------------------ */
/* Nodes -> ops: fusion, shape inference, weight checks                            */
/* ------------------------------------------------------------------------------ */

function topoSort(nodes) {
  const byName = new Map(nodes.map((n) => [n.name, n]));
  for (const n of nodes) {
    for (const i of n.inputs) if (!byName.has(i)) fail(`node '${n.name}' has input '${i}', which does not exist`);
  }
  const state = new Map(); // 1 visiting, 2 done
  const order = [];
  const visit = (n) => {
    const s = state.get(n.name);
    if (s === 2) return;
    if (s === 1) fail(`the model graph has a cycle through '${n.name}'`);
    state.set(n.name, 1);
    for (const i of n.inputs) visit(byName.get(i));
    state.set(n.name, 2);
    order.push(n);
  };
  // iterative over roots keeps file order for already-sorted models
  for (const n of nodes) visit(n);
  return { order, byName };
}

// Inverted-residual blocks from the structure of the op list, for any MobileNet-like
// graph: a block starts at the first expand (pointwise conv) or depthwise op after the
// previous block, and ends at its linear projection (a pointwise conv without
// activation after a depthwise) once nothing else inside the block is still read after
// it (so not squeeze-and-excitation's 1x1 convs), with the residual add that follows.
// Each block is thus a contiguous run of ops whose only outside input is the tensor
// before it, which is what training the last K blocks needs. A block is named by the
// scope its ops share ('expanded_conv_3', 'block_3'), else 'block<k>' (with '#<k>' added
// to a name an earlier block has already). Ops outside
// every block (stem, final 1x1 conv, pooling, head) get null.
function deriveBlocks(ops) {
  const lastRead = ops.map(() => -1);
  ops.forEach((o, i) => o.inputs.forEach((j) => { lastRead[j] = Math.max(lastRead[j], i); }));
  const pointwise = (o) => o.type === 'conv2d' && o.kernel[0] === 1 && o.kernel[1] === 1 && o.strides[0] === 1 && o.strides[1] === 1;
  let start = -1, sawDepthwise = false, count = 0;
  const used = new Set();
  for (let i = 1; i < ops.length; i++) {
    const o = ops[i];
    o.block = null;
    if (start < 0 && (o.type === 'depthwise' || pointwise(o))) start = i;
    if (start < 0) continue;
    if (o.type === 'depthwise') sawDepthwise = true;
    if (!(sawDepthwise && pointwise(o) && o.act === 'none')) continue;
    let inner = false;
    for (let j = start; j < i && !inner; j++) inner = lastRead[j] > i;
    if (inner) continue;
    const next = ops[i + 1];
    const end = next?.type === 'add' && next.inputs.includes(i) && lastRead[i] === i + 1 ? i + 1 : i;
    let name = scopeName(ops.slice(start, end + 1).map((x) => x.name)) ?? `block${count}`;
    if (used.has(name)) name = `${name}#${count}`; // names must tell blocks apart
    used.add(name);
    for (let j = start; j <= end; j++) ops[j].block = name;
    count++;
    i = end;
    start = -1;
    sawDepthwise = false;
  }
  for (let i = start < 0 ? ops.length : start; i < ops.length; i++) ops[i].block = null; // an unfinished block
}

// The scope a block's op names share: 'a/b/expanded_conv_3/x', 'a/b/expanded_conv_3/y'
// -> 'expanded_conv_3'; 'block_3_expand', 'block_3_project' -> 'block_3'. Null if none.
function scopeName(names) {
  let p = names[0];
  for (const n of names) while (!n.startsWith(p)) p = p.slice(0, -1);
  if (!/[/_]$/.test(p) && !names.every((n) => n === p || /^[/_]/.test(n.slice(p.length)))) p = p.replace(/[^/_]*$/, '');
  p = p.replace(/[/_]+$/, '');
  const last = p.slice(p.lastIndexOf('/') + 1);
  return last || null;
}

function outSize(inHW, kernel, strides, padding, pads, what) {
  const h = inHW[0] + pads[0] + pads[1], w = inHW[1] + pads[2] + pads[3];
  if (padding === 'same') return [Math.ceil(h / strides[0]), Math.ceil(w / strides[1])];
  if (h < kernel[0] || w < kernel[1]) fail(`${what}: kernel ${kernel[0]}x${kernel[1]} is larger than its ${h}x${w} input`);
  return [Math.ceil((h - kernel[0] + 1) / strides[0]), Math.ceil((w - kernel[1] + 1) / strides[1])];
}

function buildOps(nodes, outputs, specs, format) {
  const { order, byName } = topoSort(nodes);
  const consumers = new Map(nodes.map((n) => [n.name, []]));
  for (const n of nodes) for (const i of n.inputs) consumers.get(i).push(n);
  if (outputs.length === 0) outputs = nodes.filter((n) => consumers.get(n.name).length === 0).map((n) => n.name);
  for (const o of outputs) {
    if (!consumers.has(o)) fail(`model output '${o}' does not exist`);
    consumers.get(o).push(null); // a model output is a consumer no fusion may hide
  }
  // Consumers seen through identity-like nodes, which do not become ops
  const effective = (name) => consumers.get(name).flatMap((c) => (c && (c.kind === 'alias' || c.kind === 'pad') ? effective(c.name) : [c]));
  const soleConsumer = (name, node) => {
    const c = effective(name);
    return c.length === 1 && c[0] === node;
  };

  const ops = [];
  const at = new Map(); // node name -> {op, flat, pads}
  const ref = (name) => at.get(name);
  const shapeOf = (name) => ops[ref(name).op].shape;
  const spec = (name) => specs.get(name);
  const expect = (what, specName, shape) => {
    if (specName && !sameShape(spec(specName).shape, shape)) {
      fail(`${what}: weight '${specName}' has shape ${fmtShape(spec(specName).shape)}, expected ${fmtShape(shape)}`);
    }
  };
  const checkBn = (what, bn, c) => {
    for (const k of ['gamma', 'beta', 'mean', 'variance']) expect(what, bn[k], [c]);
    if (!(bn.epsilon >= 0)) fail(`${what}: invalid batch norm epsilon ${bn.epsilon}`);
  };
  const addOp = (node, fields, name = node.name) => {
    const op = {
      name, type: fields.type, inputs: fields.inputs ?? node.inputs.map((i) => ref(i).op), aliases: [], block: null,
      kernel: [1, 1], strides: [1, 1], padding: 'valid', pads: [0, 0, 0, 0], act: 'none', channels: 0, scale: 1, offset: 0,
      weights: { kernel: null, bias: null, bn: null }, shape: null, ...fields,
    };
    checkShape(op.shape, `output of ${op.type} '${name}'`);
    op.channels = op.shape[2];
    op.tail = name; // latest name whose output is this op's output, for fusion checks
    ops.push(op);
    at.set(node.name, { op: ops.length - 1, flat: false, pads: null });
    return op;
  };
  // A conv/depthwise/dense op may absorb the next stage only if nothing else reads it
  const fusable = (node) => {
    const r = ref(node.inputs[0]);
    const op = ops[r.op];
    return WEIGHTED.has(op.type) && soleConsumer(op.tail, node) ? op : null;
  };
  const fuseInto = (op, node) => {
    op.aliases.push(node.name);
    op.tail = node.name;
    at.set(node.name, { op: ops.indexOf(op), flat: false, pads: null });
  };

  for (const node of order) {
    const what = `${node.kind} '${node.name}'`;
    const in0 = node.inputs[0];
    switch (node.kind) {
      case 'input':
        if (ops.length) fail(`model has more than one input ('${ops[0].name}', '${node.name}'); exactly one is supported`);
        addOp(node, { type: 'input', inputs: [], shape: node.shape });
        break;
      case 'conv2d': case 'depthwise': {
        const r = ref(in0);
        const inShape = shapeOf(in0);
        const ks = spec(node.kernel).shape;
        if (ks.length !== 4) fail(`${what}: kernel '${node.kernel}' has shape ${fmtShape(ks)}, expected [kh,kw,cin,cout]`);
        const [kh, kw, cin, cout] = ks;
        if (node.kernelSize && (kh !== node.kernelSize[0] || kw !== node.kernelSize[1])) {
          fail(`${what}: kernel '${node.kernel}' has shape ${fmtShape(ks)} but kernel_size is ${fmtShape(node.kernelSize)}`);
        }
        if (cin !== inShape[2]) fail(`${what}: kernel '${node.kernel}' has shape ${fmtShape(ks)} but the input has ${inShape[2]} channels`);
        if (node.kind === 'depthwise' && cout !== 1) fail(`${what}: unsupported depth multiplier ${cout} (kernel ${fmtShape(ks)}; only 1)`);
        if (node.filters != null && cout !== node.filters) fail(`${what}: kernel '${node.kernel}' has shape ${fmtShape(ks)} but filters is ${node.filters}`);
        const channels = node.kind === 'depthwise' ? cin : cout;
        const pads = r.pads ?? [0, 0, 0, 0];
        const hw = outSize(inShape, [kh, kw], node.strides, node.padding, pads, what);
        expect(what, node.bias, [channels]);
        if (node.bn) checkBn(what, node.bn, channels);
        const op = addOp(node, {
          type: node.kind, kernel: [kh, kw], strides: node.strides, padding: node.padding, pads: pads.slice(), act: node.act,
          weights: { kernel: node.kernel, bias: node.bias, bn: node.bn }, shape: [...hw, channels],
        }, node.softmax ? `${node.name}/logits` : node.name);
        if (node.softmax) splitSoftmax(node, op);
        break;
      }
      case 'dense': {
        const r = ref(in0);
        const inShape = shapeOf(in0);
        if (inShape[0] * inShape[1] !== 1 && !r.flat) fail(`${what}: applied to a ${inShape.join('x')} tensor without Flatten; only flat inputs are supported`);
        const ks = spec(node.kernel).shape;
        const cin = product(inShape);
        if (ks.length !== 2 || ks[0] !== cin) fail(`${what}: kernel '${node.kernel}' has shape ${fmtShape(ks)} but the input has ${cin} features`);
        if (node.units != null && ks[1] !== node.units) fail(`${what}: kernel '${node.kernel}' has shape ${fmtShape(ks)} but units is ${node.units}`);
        expect(what, node.bias, [ks[1]]);
        const op = addOp(node, { type: 'dense', act: node.act, weights: { kernel: node.kernel, bias: node.bias, bn: null }, shape: [1, 1, ks[1]] },
          node.softmax ? `${node.name}/logits` : node.name);
        if (node.softmax) splitSoftmax(node, op);
        break;
      }
      case 'bn': {
        const op = fusable(node);
        if (!op || op.weights.bn || op.act !== 'none') {
          fail(`${what} cannot be folded into the op before it (it must directly follow a conv, depthwise or dense layer with no activation and no other reader); standalone batch norm is not supported`);
        }
        checkBn(what, node.bn, op.channels);
        op.weights.bn = node.bn;
        fuseInto(op, node);
        break;
      }
      case 'bias': {
        const op = fusable(node);
        if (!op || op.weights.bias || op.weights.bn || op.act !== 'none') fail(`${what}: a standalone bias add is not supported`);
        expect(what, node.bias, [op.channels]);
        op.weights.bias = node.bias;
        fuseInto(op, node);
        break;
      }
      case 'act': {
        if (node.act === 'hswish' || node.act === 'hsigmoid') {
          // their constants come from the weights: a standalone op (scale a, offset b)
          const op = addOp(node, { type: 'act', act: node.act, hard: { a: node.a, b: node.b }, shape: shapeOf(in0).slice() });
          composeHard(op);
          break;
        }
        const op = fusable(node);
        if (op && op.act === 'none') { op.act = node.act; fuseInto(op, node); break; }
        addOp(node, { type: 'act', act: node.act, shape: shapeOf(in0).slice() });
        break;
      }
      case 'scalar': {
        const prevOp = ops[ref(in0).op];
        if (prevOp.type === 'affine' && soleConsumer(prevOp.tail, node)) {
          prevOp.terms.push(node.term);
          fuseInto(prevOp, node);
          composeAffine(prevOp);
          break;
        }
        const op = addOp(node, { type: 'affine', terms: [node.term], shape: shapeOf(in0).slice() });
        composeAffine(op);
        break;
      }
      case 'add': {
        const shapes = node.inputs.map(shapeOf);
        for (let i = 1; i < shapes.length; i++) {
          if (!sameShape(shapes[0], shapes[i])) fail(`${what}: input shapes differ: '${node.inputs[0]}' ${fmtShape(shapes[0])} vs '${node.inputs[i]}' ${fmtShape(shapes[i])}`);
        }
        addOp(node, { type: 'add', shape: shapes[0].slice() });
        break;
      }
      case 'mean': {
        const inShape = shapeOf(in0);
        addOp(node, { type: 'mean', axes: node.axes, shape: [1, 1, inShape[2]] });
        if (!node.keepDims) at.get(node.name).flat = true;
        break;
      }
      case 'prelu': {
        const inShape = shapeOf(in0);
        const as = spec(node.alpha).shape;
        if (product(as) !== inShape[2] || as.at(-1) !== inShape[2]) fail(`${what}: slope '${node.alpha}' has shape ${fmtShape(as)}, expected [${inShape[2]}]`);
        addOp(node, { type: 'prelu', weights: { kernel: node.alpha, bias: null, bn: null, kernelScale: node.alphaScale, kernelShift: node.alphaShift }, shape: inShape.slice() });
        break;
      }
      case 'gate': {
        // the full tensor first, the 1x1xC gate second, whichever order the graph has
        const [a, b] = node.inputs.map(shapeOf);
        const gateFirst = a[0] * a[1] === 1 && b[0] * b[1] !== 1;
        const [x, g] = gateFirst ? [node.inputs[1], node.inputs[0]] : node.inputs;
        const [sx, sg] = [shapeOf(x), shapeOf(g)];
        if (sg[0] !== 1 || sg[1] !== 1 || sg[2] !== sx[2]) {
          fail(`unsupported Mul of ${fmtShape(sx)} by ${fmtShape(sg)} at node '${node.name}' (only a tensor by a [1,1,channels] gate)`);
        }
        addOp(node, { type: 'gate', inputs: [ref(x).op, ref(g).op], shape: sx.slice() });
        break;
      }
      case 'avgpool': {
        const inShape = shapeOf(in0);
        const kernel = node.global ? inShape.slice(0, 2) : node.kernel;
        const hw = outSize(inShape, kernel, node.strides, node.padding, [0, 0, 0, 0], what);
        addOp(node, { type: 'avgpool', kernel, strides: node.strides, padding: node.padding, shape: [...hw, inShape[2]] });
        break;
      }
      case 'softmax':
        addOp(node, { type: 'softmax', shape: shapeOf(in0).slice() });
        break;
      case 'pad': {
        const bad = effective(node.name).find((c) => !c || (c.kind !== 'conv2d' && c.kind !== 'depthwise') || c.padding !== 'valid');
        if (bad !== undefined) fail(`${what} is not followed only by 'valid' convolutions; standalone padding is not supported`);
        const r = ref(in0);
        if (r.pads) fail(`${what} follows another padding layer; stacked padding is not supported`);
        ops[r.op].aliases.push(node.name);
        at.set(node.name, { ...r, pads: node.pads });
        break;
      }
      case 'alias': {
        const r = ref(in0);
        const s = ops[r.op].shape;
        if (node.needs1x1 && s[0] * s[1] !== 1) fail(`${what}: cannot squeeze/reshape a ${s.join('x')} tensor; only 1x1 spatial tensors are supported`);
        if (node.size != null && node.size !== -1 && node.size !== product(s)) fail(`${what}: cannot reshape ${s.join('x')} to [${node.size}]`);
        ops[r.op].aliases.push(node.name);
        at.set(node.name, { op: r.op, flat: r.flat || node.flat, pads: r.pads });
        break;
      }
      default:
        fail(`internal: unknown node kind '${node.kind}'`);
    }
  }

  // Keras semantics: the layer name gives the activation's output (probabilities),
  // the pre-softmax logits stay reachable as "<layer>/logits".
  function splitSoftmax(node, op) {
    addOp(node, { type: 'softmax', inputs: [ops.indexOf(op)], shape: op.shape.slice() }, `${node.name}/softmax`).aliases.push(node.name);
  }

  for (const op of ops) delete op.tail;
  deriveBlocks(ops);
  return ops;
}

// x*scale + offset from the accumulated scalar terms; null until every constant is known
function composeAffine(op, values = new Map()) {
  let s = 1, o = 0;
  for (const t of op.terms) {
    const c = t.value ?? values.get(t.spec);
    if (c === undefined) { op.scale = op.offset = null; return; }
    if (t.op === 'mul') { s *= c; o *= c; }
    else if (t.op === 'add') o += c;
    else if (t.op === 'sub') o -= c;
    else { s = -s; o = c - o; } // rsub: c - x
  }
  op.scale = s;
  op.offset = o;
}

// scale/offset of a hard-swish/sigmoid act op from its constants; null until known
function composeHard(op, values = new Map()) {
  const [a, b] = [op.hard.a, op.hard.b].map((t) => t.value ?? values.get(t.spec));
  op.scale = a ?? null;
  op.offset = a === undefined || b === undefined ? null : b;
  if (op.offset === null) op.scale = null;
}

/**
 * Fills in affine scale/offset (and hard activations' constants) whose constants live in
 * the weights (graph models), and checks a Mean's axes. decode(spec): the values of one
 * weight, decoded by the engine (tt_weights_decode; wasm/engine.mjs calls this).
 */
export function resolveConstants(parsed, decode) {
  for (const op of parsed.ops) {
    if (op.type === 'mean' && op.axes) {
      const axes = [...decode(parsed.specs.get(op.axes))].sort();
      if (!sameShape(axes, [1, 2])) fail(`unsupported Mean at node '${op.name}': axes ${fmtShape(axes)}; only the spatial axes [1,2]`);
    }
    if (op.type === 'act' && op.hard) {
      const values = new Map();
      for (const t of [op.hard.a, op.hard.b]) if (t.spec) values.set(t.spec, decode(parsed.specs.get(t.spec))[0]);
      composeHard(op, values);
      if (!Number.isFinite(op.scale) || !Number.isFinite(op.offset)) fail(`${op.act} op '${op.name}' has non-finite constants`);
    }
    if (op.type !== 'affine') continue;
    const values = new Map();
    for (const t of op.terms) if (t.spec) values.set(t.spec, decode(parsed.specs.get(t.spec))[0]);
    composeAffine(op, values);
    if (!Number.isFinite(op.scale) || !Number.isFinite(op.offset)) fail(`affine op '${op.name}' has a non-finite scale or offset`);
  }
  return parsed;
}

/* ------------------------------------------------------------------------------ */
/* Public: parseModel                                                              */
/* ------------------------------------------------------------------------------ */

/**
 * Parses a tfjs model.json object (graph or layers model) into
 * { format: 'graph'|'layers', inputShape: [H,W,C], specs, groups, ops, defaultCut, labels: null }.
 *
 * specs: Map name -> {name, shape, dtype, quant, group, offset, byteLength}, offset into
 *   the concatenation of all shards (what loadWeights returns).
 * ops[i]: {name, type, inputs, aliases, block, kernel, strides, padding, pads, act,
 *   channels, scale, offset, weights: {kernel, bias, bn}, shape: [H,W,C] of its output}.
 *   Every field is present on every op, with neutral values (kernel/strides [1,1],
 *   'valid', zero pads, 'none', scale 1, offset 0) where it does not apply.
 * Conventions:
 *   - pads is zero padding added before the op's own SAME/VALID rule; it is only ever
 *     non-zero on 'valid' convs that absorbed a ZeroPadding2D (whose name becomes an
 *     alias of the op *feeding* the padding, i.e. the unpadded tensor).
 *   - names folded into an op (BatchNorm, ReLU, BiasAdd, Sub of an affine) are its
 *     aliases and denote its final output, as do Identity/Dropout/Flatten/Squeeze.
 *   - a Keras layer with activation 'softmax' becomes two ops: '<layer>/logits' (the
 *     dense or conv) and '<layer>/softmax' with alias '<layer>', so the layer name
 *     gives the probabilities, as in Keras.
 *   - an 'affine' op keeps its graph constants in `terms`; scale/offset are null until
 *     resolveConstants() has read them from the weights (the engine does, as it loads).
 *   - dense ops output [1,1,units]; their input is flattened NHWC.
 *   - defaultCut: the last avgpool op (the pooled features), or a global mean that no
 *     op reads; without one, the input of the first dense op; without that, the last op.
 * opts.inputSize: [height, width] to run a fully convolutional graph at instead of its
 *   own input size (refused where a layer needs the original size, e.g. a Flatten).
 * opts.inputScale: the graph wants pixels in [0, inputScale] (its card's input range);
 *   an 'affine' op right after the input scales the engine's [0,1] pixels to that.
 */
export function parseModel(json, opts = {}) {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) fail('not a tfjs model: model.json must be a JSON object');
  const topo = json.modelTopology;
  if (!topo || typeof topo !== 'object') fail("not a tfjs model: model.json has no 'modelTopology'");
  if (!Array.isArray(json.weightsManifest)) fail("not a tfjs model: model.json has no 'weightsManifest'");
  let format;
  if (json.format === 'graph-model' || (json.format == null && Array.isArray(topo.node))) format = 'graph';
  else if (json.format === 'layers-model' || (json.format == null && (topo.model_config || topo.class_name))) format = 'layers';
  else fail(`not a tfjs model: unknown format ${JSON.stringify(json.format ?? null)}`);

  const { specs, groups } = readManifest(json.weightsManifest);
  const mc = topo.model_config ?? topo;
  const count = format === 'graph' ? topo.node?.length : (Array.isArray(mc.config) ? mc.config : mc.config?.layers)?.length;
  if (count > MAX_NODES) fail(`model has ${count} ${format === 'graph' ? 'nodes' : 'layers'}; the limit is ${MAX_NODES}`);
  let ops, graphInput;
  try {
    const { nodes, outputs } = format === 'graph' ? readGraph(topo, specs) : readLayers(topo, specs);
    if (!nodes.some((n) => n.kind === 'input')) fail('model has no input');
    graphInput = adaptInput(nodes, opts);
    ops = buildOps(nodes, outputs, specs, format);
  } catch (e) {
    // the graph walks recurse along the longest chain of layers
    if (e instanceof RangeError && /call stack/i.test(e.message)) fail('model graph is too deep to parse: a chain of thousands of layers (the engine runs at most 4096 ops)');
    throw e;
  }
  if (ops[0]?.type !== 'input') fail('model input is not the first op');

  const read = new Set(ops.flatMap((o) => o.inputs));
  let defaultCut = ops.findLastIndex((o) => o.type === 'avgpool' || (o.type === 'mean' && !read.has(ops.indexOf(o))));
  if (defaultCut < 0) {
    // no pooling: cut before the classifier head
    const dense = ops.findIndex((o) => o.type === 'dense');
    defaultCut = dense > 0 ? ops[dense].inputs[0] : ops.length - 1;
  }
  return { format, inputShape: ops[0].shape.slice(), graphInputShape: graphInput, specs, groups, ops, defaultCut, labels: null };
}

// The input at another size, and scaled to the range the graph wants (see parseModel).
function adaptInput(nodes, { inputSize, inputScale } = {}) {
  const input = nodes.find((n) => n.kind === 'input');
  const own = input.shape.slice();
  if (inputSize != null) {
    const [h, w] = Array.isArray(inputSize) ? inputSize : [inputSize, inputSize];
    checkShape([h, w], `input size for '${input.name}'`);
    input.shape = [h, w, input.shape[2]];
  }
  if (inputScale != null && inputScale !== 1) {
    if (!(Number.isFinite(inputScale) && inputScale > 0)) fail(`invalid input scale ${inputScale} for '${input.name}'`);
    const name = `${input.name}/to_0_${inputScale}`;
    for (const n of nodes) n.inputs = n.inputs.map((i) => (i === input.name ? name : i));
    nodes.splice(nodes.indexOf(input) + 1, 0, { name, inputs: [input.name], kind: 'scalar', term: { op: 'mul', value: inputScale } });
  }
  return own;
}

/** Index of the op whose output the node/layer `name` denotes (its name or an alias), or -1. */
export function findOp(parsed, name) {
  return parsed.ops.findIndex((o) => o.name === name || o.aliases.includes(name));
}

/* ------------------------------------------------------------------------------ */
/* Loading shards                                                                  */
/* ------------------------------------------------------------------------------ */

function toBytes(data, path) {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return fail(`fetchShard('${path}') returned ${data === null ? 'null' : typeof data}; expected an ArrayBuffer or Uint8Array`);
}

// The converter cuts a group into fixed-size shards (4 MiB unless told otherwise), all
// full but the last. Only the group total is certain, so this layout is used solely to
// name the shard at fault once the total is wrong; null when the total does not fit it.
function shardSizes(group) {
  const n = group.paths.length, total = group.byteLength;
  if (n === 1) return [total];
  if (total > (n - 1) * SHARD_SIZE && total <= n * SHARD_SIZE) return group.paths.map((_, i) => (i < n - 1 ? SHARD_SIZE : total - (n - 1) * SHARD_SIZE));
  return null;
}

function sizeError(group, gi, got, loaded) {
  const expected = shardSizes(group);
  const i = expected ? got.findIndex((n, k) => n !== expected[k]) : -1;
  if (i >= 0) {
    return new EngineError(`weights shard ${group.paths[i]} is ${got[i] < expected[i] ? 'truncated' : 'too long'}: expected ${fmtBytes(expected[i])} bytes, got ${fmtBytes(got[i])}`);
  }
  const which = `weights group ${gi + 1} (${group.paths.join(', ')})`;
  const short = loaded < group.byteLength;
  return new EngineError(`${which} is ${short ? 'truncated' : 'too long'}: expected ${fmtBytes(group.byteLength)} bytes in total, got ${short ? '' : 'at least '}${fmtBytes(loaded)}`);
}

/**
 * Fetches all shards of all groups in manifest order into one Uint8Array (the layout
 * spec offsets refer to). fetchShard(path, onBytes?) -> Promise<ArrayBuffer|Uint8Array>;
 * onProgress(loadedBytes, totalBytes).
 */
export async function loadWeights(groups, fetchShard, onProgress) {
  const total = groups.reduce((s, g) => s + g.byteLength, 0);
  const out = new Uint8Array(total);
  let pos = 0;
  onProgress?.(0, total);
  for (const [gi, group] of groups.entries()) {
    const got = [];
    let inGroup = 0;
    for (const path of group.paths) {
      const start = pos;
      const onBytes = onProgress && ((n) => onProgress(Math.min(start + n, total), total));
      const bytes = toBytes(await fetchShard(path, onBytes), path);
      got.push(bytes.length);
      inGroup += bytes.length;
      if (inGroup > group.byteLength) throw sizeError(group, gi, got, inGroup);
      out.set(bytes, pos);
      pos += bytes.length;
      onProgress?.(pos, total);
    }
    if (inGroup !== group.byteLength) throw sizeError(group, gi, got, inGroup);
  }
  return out;
}

/* ------------------------------------------------------------------------------ */
/* Fetching files: browsers (fetch) and Node (fs for paths and file: URLs)         */
/* ------------------------------------------------------------------------------ */

const isUrlString = (s) => /^[a-z][a-z0-9+.-]+:/i.test(s) && !/^[a-z]:[\\/]/i.test(s); // not C:\...

// Resolves a URL or path to a URL. Directories get a trailing slash so that relative
// shard paths resolve inside them; in Node this is checked on disk, elsewhere a last
// segment without a dot is taken to be a directory.
async function toUrl(source) {
  if (source instanceof URL) source = source.href;
  if (typeof source !== 'string' || !source) fail(`invalid model location ${JSON.stringify(source)}`);
  let url;
  if (isUrlString(source)) url = new URL(source);
  else if (isNode()) {
    const { pathToFileURL } = await import('node:url');
    const { resolve } = await import('node:path');
    url = pathToFileURL(resolve(source));
  } else {
    const base = globalThis.document?.baseURI ?? globalThis.location?.href;
    if (!base) fail(`cannot resolve relative model location '${source}' without a page URL`);
    url = new URL(source, base);
  }
  if (url.pathname.endsWith('/')) return url;
  let dir;
  if (url.protocol === 'file:' && isNode()) {
    const { stat } = await import('node:fs/promises');
    dir = await stat(url).then((s) => s.isDirectory(), () => false);
  } else dir = !url.pathname.split('/').pop().includes('.');
  if (dir) url.pathname += '/';
  return url;
}

const showUrl = (url) => (url.protocol === 'file:' ? decodeURIComponent(url.pathname) : url.href);

async function readUrl(url, what, onBytes, limit = MAX_WEIGHT_BYTES) {
  const where = `cannot load ${what} from ${showUrl(url)}`;
  const tooBig = (n) => fail(`${where}: it is ${n == null ? 'larger than' : `${fmtBytes(n)} bytes, more than`} the limit of ${fmtBytes(limit)} bytes`);
  if (url.protocol === 'file:' && isNode()) {
    const { readFile, stat } = await import('node:fs/promises');
    let data;
    try {
      const st = await stat(url);
      if (st.isFile() && st.size > limit) tooBig(st.size);
      data = await readFile(url);
    } catch (e) {
      if (e.message.startsWith(where)) throw e;
      fail(`${where}: ${e.code === 'ENOENT' ? 'file not found (ENOENT)' : e.message}`);
    }
    if (data.length > limit) tooBig(data.length);
    onBytes?.(data.length);
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  }
  let res;
  try {
    res = await fetch(url);
  } catch (e) {
    fail(`${where}: ${e.message}`);
  }
  if (!res.ok) fail(`${where}: ${res.status} ${res.statusText}`.trimEnd());
  const declared = Number(res.headers?.get?.('content-length'));
  if (declared > limit) tooBig(declared);
  if (!res.body?.getReader) {
    const body = new Uint8Array(await res.arrayBuffer());
    return body.length > limit ? tooBig(body.length) : body;
  }
  // stream so progress moves during big shards
  const reader = res.body.getReader();
  const chunks = [];
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    n += value.length;
    if (n > limit) { // a server that never stops sending
      reader.cancel().catch(() => {});
      tooBig(null);
    }
    onBytes?.(n);
  }
  const out = new Uint8Array(n);
  let p = 0;
  for (const c of chunks) { out.set(c, p); p += c.length; }
  return out;
}

// A shard path from the manifest is untrusted: it must name a file in model.json's folder
// or below it, as tensorflowjs_converter writes them ('group1-shard1of2', 'weights/x.bin').
// For files this keeps a model.json from reading anything else on the disk; for URLs
// the same rule applies (a browser would keep '../x' on the same origin, but it would
// still leave the model's folder), so no '..' or '.' segment (nor its %2e spelling), no
// absolute path, drive, scheme or other origin, no backslash, query or fragment.
export function checkShardPath(path) {
  const refuse = (why) => fail(`weights manifest path '${path}' is refused: ${why}; a shard must be a relative path inside model.json's folder (like 'group1-shard1of2' or 'weights/group1-shard1of2')`);
  if (typeof path !== 'string' || !path) refuse('it is empty');
  if (/[\\]/.test(path)) refuse('it contains a backslash');
  if (/^[a-z][a-z0-9+.-]*:/i.test(path) || path.startsWith('//')) refuse('it is a URL or names a drive');
  if (path.startsWith('/')) refuse('it is an absolute path');
  if (/[?#]/.test(path)) refuse('it has a query or fragment');
  let decoded;
  try { decoded = decodeURIComponent(path); } catch { refuse('it has a malformed %-escape'); }
  for (const seg of decoded.split(/[\\/]/)) {
    if (seg === '..') refuse("it has a '..' segment, which leaves the model's folder");
    if (seg === '.' || seg === '') refuse("it has an empty or '.' segment");
  }
  return path;
}

/**
 * fetchShard for loadWeights. base: URL or path of model.json, or of its directory.
 * URLs are fetched (with streaming progress); paths and file: URLs are read with
 * node:fs in Node. Paths are checked by checkShardPath, and the resolved location must
 * still lie in the folder of model.json.
 */
export function makeFetcher(base) {
  let baseUrl;
  return async (path, onBytes) => {
    checkShardPath(path);
    baseUrl ??= await toUrl(base);
    const url = new URL(path, baseUrl);
    const folder = new URL('./', baseUrl);
    if (url.origin !== folder.origin || !url.href.startsWith(folder.href)) { // a second lock; checkShardPath already refuses this
      fail(`weights manifest path '${path}' is refused: it resolves to ${showUrl(url)}, outside model.json's folder ${showUrl(folder)}`);
    }
    return readUrl(url, `model shard '${path}'`, onBytes);
  };
}

/**
 * Reads model.json and its weights. source: URL or path of model.json or of its
 * directory. Returns { json, parsed, weightBytes, card }: card is the zoo's card.json next
 * to model.json, or null when there is none. Graph constants stay unresolved until the
 * engine decodes them (resolveConstants).
 */
export async function loadModelFiles(source, onProgress, opts = {}) {
  let url = await toUrl(source);
  if (url.pathname.endsWith('/')) url = new URL('model.json', url);
  const [json, card] = await Promise.all([
    readJson(url, 'model.json'),
    // a model outside the zoo has no card; that is not an error
    readJson(new URL('card.json', url), 'card.json').catch((e) => (/not valid JSON/.test(e.message) ? Promise.reject(e) : null)),
  ]);
  const range = card?.input?.range;
  const parsed = parseModel(json, { inputSize: opts.inputSize, inputScale: Array.isArray(range) && range[0] === 0 ? range[1] : undefined });
  if (card) checkCard(card, parsed, opts.inputSize);
  for (const g of parsed.groups) g.paths.forEach(checkShardPath); // before reading any shard
  const weightBytes = await loadWeights(parsed.groups, makeFetcher(url), onProgress);
  return { json, parsed, weightBytes, card };
}

/**
 * Refuses a model card whose input disagrees with its graph: input size and channels
 * (the graph's own, whatever size it runs at), and a pixel range the engine can feed
 * ([0, 1] or [0, 255]; anything else would need a preprocessing step it lacks).
 */
export function checkCard(card, parsed, inputSize) {
  const ci = card.input;
  if (!ci) return;
  const native = parsed.graphInputShape; // the graph's own input, before any resize
  const want = [ci.height, ci.width, ci.channels];
  if (!sameShape(want, native)) {
    fail(`model card '${card.id ?? '?'}' says the input is ${want.join('x')}, but the graph's input '${parsed.ops[0].name}' is ${native.join('x')}; the card does not describe this model`);
  }
  const r = ci.range;
  if (r && !(Array.isArray(r) && r[0] === 0 && (r[1] === 1 || r[1] === 255))) {
    fail(`model card '${card.id ?? '?'}' gives the input range ${JSON.stringify(r)}; only [0,1] and [0,255] are supported`);
  }
  if (inputSize != null && card.input.sizes && !card.input.sizes.includes(Array.isArray(inputSize) ? inputSize[0] : inputSize)) {
    fail(`model card '${card.id ?? '?'}' lists input sizes ${JSON.stringify(card.input.sizes)}; ${JSON.stringify(inputSize)} is not one of them`);
  }
}

async function readJson(url, what) {
  const text = new TextDecoder().decode(await readUrl(url, what, null, MAX_JSON_BYTES));
  try {
    return JSON.parse(text);
  } catch (e) {
    return fail(`${what} at ${showUrl(url)} is not valid JSON: ${e.message}`);
  }
}
