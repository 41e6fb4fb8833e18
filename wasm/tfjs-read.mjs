// TensorFlow.js model files, read: the weights manifest (every weight's shape, dtype,
// quantization and place in the shard bytes) and the two graph formats tfjs writes, each
// turned into the same small list of "nodes" (one per graph node / Keras layer, same
// names) that tfjs-compile.mjs fuses into engine ops. Graph models are converted TF
// SavedModels (a node list with TF op names); layers models are Keras model_configs.
// Pure JS, no I/O (tfjs-load.mjs reads the files). Everything is refused with an
// EngineError naming the node, layer or weight at fault. Over 600 lines because it holds
// both formats' readers, which share the manifest and the node shape; split, each half
// would import most of the other.
import { EngineError } from './errors.mjs';

export const MAX_ELEMENTS = 2 ** 28; // bigger than any real CNN tensor; stops absurd allocations
// All weights of a model, and any one file read: the engine's 2 GiB of memory must hold
// the weight bytes and their float32 decoding (MobileNetV2 float32 is 14 MB).
export const MAX_WEIGHT_BYTES = 512 * 2 ** 20;
export const MAX_NODES = 65536; // graph nodes or layers (the engine runs at most 4096 ops)
const DTYPE_BYTES = { float32: 4, int32: 4, float16: 2, uint16: 2, uint8: 1, bool: 1 };
const QUANT_DTYPES = new Set(['uint8', 'uint16', 'float16']);

/* ------------------------------------------------------------------------------ */
/* Small helpers                                                                   */
/* ------------------------------------------------------------------------------ */

export const fail = (msg) => {
  throw new EngineError(msg);
};
export const fmtShape = (s) => `[${s.join(',')}]`;
export const fmtBytes = (n) => String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ' ');
export const product = (s) => s.reduce((a, b) => a * b, 1);
export const sameShape = (a, b) => a.length === b.length && a.every((d, i) => d === b[i]);

export function checkShape(shape, what) {
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
export function readManifest(manifest) {
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
    fail(
      `the weights manifest declares ${fmtBytes(offset)} bytes of weights, more than the limit of ${fmtBytes(MAX_WEIGHT_BYTES)} (512 MiB)`,
    );
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

export function readGraph(topo, specs) {
  if (!Array.isArray(topo.node)) fail("not a tfjs graph model: modelTopology has no 'node' list");
  const byName = new Map();
  for (const n of topo.node) {
    if (typeof n?.name !== 'string' || typeof n.op !== 'string') fail(`graph node ${JSON.stringify(n?.name)} has no name or op`);
    if (byName.has(n.name)) fail(`graph node '${n.name}' is defined twice`);
    byName.set(n.name, n);
  }
  const used = new Set();
  const inputsOf = (node) =>
    (node.input ?? [])
      .filter((i) => !i.startsWith('^'))
      .map((i) => {
        const m = /^(.*?)(?::(\d+))?$/.exec(i);
        if (m[2] && m[2] !== '0') fail(`node '${node.name}' reads output ${m[2]} of '${m[1]}'; multi-output ops are not supported`);
        if (!byName.has(m[1])) fail(`node '${node.name}' has input '${m[1]}', which does not exist`);
        return m[1];
      });
  const isConst = (name) => byName.get(name).op === 'Const';
  const weight = (node) => (name) => {
    if (name === undefined) fail(`node '${node.name}' has too few inputs`);
    if (!isConst(name))
      fail(`node '${node.name}' expects a constant weight as input '${name}', but that is a '${byName.get(name).op}' node`);
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
    if (product(spec.shape) !== 1)
      fail(`unsupported ${node.op} by non-scalar constant '${name}' ${fmtShape(spec.shape)} at node '${node.name}'`);
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
      case 'Const':
      case 'NoOp':
        continue;
      case 'Placeholder': {
        const dtype = attrOf(node, 'dtype')?.type;
        if (dtype && dtype !== 'DT_FLOAT') fail(`input '${name}' has dtype ${dtype}; only float inputs are supported`);
        const dims = (attrOf(node, 'shape')?.shape?.dim ?? []).map((d) => Number(d.size));
        nodes.push({ ...base, inputs: [], kind: 'input', shape: inputDims(dims, name) });
        continue;
      }
      case 'Conv2D':
      case '_FusedConv2D':
      case 'DepthwiseConv2dNative':
      case 'FusedDepthwiseConv2dNative': {
        if (attrStr(node, 'padding') === 'EXPLICIT') fail(`unsupported padding 'EXPLICIT' at node '${name}'`);
        const fused =
          node.op.startsWith('Fused') || node.op.startsWith('_')
            ? graphFused(node, w, ins.slice(2))
            : { bias: null, bn: null, act: 'none' };
        nodes.push({
          ...base,
          kind: node.op.includes('Depthwise') ? 'depthwise' : 'conv2d',
          ...graphConvAttrs(node),
          kernel: w(ins[1]),
          ...fused,
        });
        continue;
      }
      case 'MatMul':
      case '_FusedMatMul': {
        if (attrOf(node, 'transpose_a')?.b || attrOf(node, 'transpose_b')?.b) fail(`unsupported transposed MatMul at node '${name}'`);
        const fused = node.op === '_FusedMatMul' ? graphFused(node, w, ins.slice(2)) : { bias: null, bn: null, act: 'none' };
        if (fused.bn) fail(`unsupported fused op 'FusedBatchNorm' on MatMul at node '${name}'`);
        nodes.push({ ...base, kind: 'dense', kernel: w(ins[1]), bias: fused.bias, act: fused.act });
        continue;
      }
      case 'BiasAdd':
        nodes.push({ ...base, kind: 'bias', bias: w(ins[1]) });
        continue;
      case 'FusedBatchNorm':
      case 'FusedBatchNormV2':
      case 'FusedBatchNormV3': {
        if (attrOf(node, 'is_training')?.b) fail(`unsupported training-mode batch norm at node '${name}'`);
        const [gamma, beta, mean, variance] = ins.slice(1, 5).map(w);
        nodes.push({ ...base, kind: 'bn', bn: { gamma, beta, mean, variance, epsilon: attrOf(node, 'epsilon')?.f ?? 1e-3 } });
        continue;
      }
      case 'Relu':
      case 'Relu6':
        nodes.push({ ...base, kind: 'act', act: node.op.toLowerCase() });
        continue;
      case 'Add':
      case 'AddV2':
      case 'Mul':
      case 'Sub': {
        if (data.length === 2 && node.op.startsWith('Add')) {
          nodes.push({ ...base, inputs: data, kind: 'add' });
          continue;
        }
        // tensor * tensor: squeeze-and-excitation's gate, told from the shapes in buildOps
        if (data.length === 2 && node.op === 'Mul') {
          nodes.push({ ...base, inputs: data, kind: 'gate' });
          continue;
        }
        if (data.length !== 1 || ins.length !== 2)
          fail(`unsupported op '${node.op}' at node '${name}': only tensor+tensor adds and tensor-scalar arithmetic are supported`);
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
        if (specs.has(axes)) {
          used.add(axes);
          spec = axes;
        } // checked once loaded (resolveConstants)
        else if (!sameShape((t?.intVal ?? []).map(Number).sort(), [1, 2]))
          fail(`unsupported Mean at node '${name}': only over the spatial axes [1,2]`);
        nodes.push({ ...base, kind: 'mean', axes: spec, keepDims: !!attrOf(node, 'keep_dims')?.b });
        continue;
      }
      case 'Squeeze': {
        const dims = attrInts(node, 'squeeze_dims') ?? [];
        if (dims.some((d) => d !== 1 && d !== 2))
          fail(`unsupported squeeze_dims ${fmtShape(dims)} at node '${name}' (only the spatial dims 1, 2)`);
        nodes.push({ ...base, kind: 'alias', flat: true, needs1x1: true });
        continue;
      }
      case 'Reshape':
        // The target shape is a weight we cannot read before loading; a reshape of a
        // 1x1xC tensor can only be a flatten (or a no-op) in these models.
        if (ins[1] && isConst(ins[1]) && specs.has(ins[1])) used.add(ins[1]);
        nodes.push({ ...base, kind: 'alias', flat: true, needs1x1: true });
        continue;
      case 'Identity':
      case 'StopGradient':
      case 'Snapshot':
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
  for (const n of graph)
    for (const i of n.input ?? []) {
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
  const replace = new Map(),
    skip = new Set();
  for (const n of graph) {
    if (n.op !== 'Mul') continue;
    const { data, consts } = split(n);
    if (data.length === 1 && consts.length === 1) {
      const r = relu6Plus(data[0]);
      if (!r) continue;
      replace.set(n.name, {
        name: n.name,
        inputs: [r.x],
        kind: 'act',
        act: 'hsigmoid',
        a: scalar(n, consts[0]),
        b: scalar(r.b.node, r.b.c),
      });
      r.inner.forEach((k) => skip.add(k));
    } else if (data.length === 2) {
      for (const [i, j] of [
        [0, 1],
        [1, 0],
      ]) {
        const r = relu6Plus(data[i]);
        if (!r) continue;
        const m = byName.get(data[j]);
        let a = null,
          inner = [];
        if (data[j] === r.x) a = { value: 1 };
        else if (m?.op === 'Mul' && only(data[j])) {
          const s = split(m);
          if (s.data.length === 1 && s.data[0] === r.x && s.consts.length === 1) {
            a = scalar(m, s.consts[0]);
            inner = [data[j]];
          }
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
    for (const [i, j] of [
      [0, 1],
      [1, 0],
    ]) {
      const m = byName.get(data[j]);
      if (m?.op !== 'Mul' || !only(data[j])) continue;
      const ms = split(m);
      const sub = byName.get(ms.data[0]);
      if (ms.data.length !== 1 || ms.consts.length !== 1 || sub?.op !== 'Sub' || !only(ms.data[0])) continue;
      const [x, absName] = split(sub).data;
      const abs = byName.get(absName);
      if (abs?.op !== 'Abs' || !only(absName) || split(abs).data[0] !== x) continue;
      const p = byName.get(data[i]);
      let shift,
        inner = [data[j], ms.data[0], absName];
      if (data[i] === x) shift = 1;
      else if (p?.op === 'Relu' && only(data[i]) && split(p).data[0] === x) {
        shift = 0;
        inner.push(data[i]);
      } else continue;
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
  if (hwc.some((d) => d === -1 || d == null))
    fail(
      `input '${name}' has unknown height, width or channels ${fmtShape(hwc.map((d) => d ?? -1))}; only fixed-size inputs are supported`,
    );
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
  const act = typeof a === 'string' ? a : (a?.class_name ?? a?.config?.activation ?? 'linear');
  if (act === 'linear' || act === 'relu' || act === 'relu6' || act === 'softmax') return act === 'linear' ? 'none' : act;
  return fail(`unsupported activation '${act}' in layer '${name}'`);
}

export function readLayers(topo, specs) {
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
      const input = {
        name: `${name}_input`,
        kind: 'input',
        inputs: [],
        shape: inputDims(cfg.batch_input_shape ?? cfg.batch_shape ?? [], `${name}_input`),
      };
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
        kernelSize: pair(cfg.kernel_size, `kernel_size of ${where}`),
        strides: pair(cfg.strides ?? 1, `strides of ${where}`),
        padding: cfg.padding,
        act: act === 'softmax' ? 'none' : act,
        softmax: act === 'softmax',
        bn: null,
      };
    };
    switch (layer.class_name) {
      case 'InputLayer':
        if ((cfg.dtype ?? 'float32') !== 'float32') fail(`input '${name}' has dtype '${cfg.dtype}'; only float32 inputs are supported`);
        nodes.push({ ...base, inputs: [], kind: 'input', shape: inputDims(cfg.batch_input_shape ?? cfg.batch_shape ?? [], name) });
        return;
      case 'Conv2D':
        if ((cfg.groups ?? 1) !== 1) fail(`unsupported groups ${cfg.groups} in ${where} (only 1)`);
        nodes.push({
          ...base,
          kind: 'conv2d',
          ...convCommon(),
          filters: cfg.filters,
          kernel: weight(name, 'kernel'),
          bias: cfg.use_bias === false ? null : weight(name, 'bias'),
        });
        return;
      case 'DepthwiseConv2D':
        if ((cfg.depth_multiplier ?? 1) !== 1) fail(`unsupported depth_multiplier ${cfg.depth_multiplier} in ${where} (only 1)`);
        nodes.push({
          ...base,
          kind: 'depthwise',
          ...convCommon(),
          kernel: weight(name, 'depthwise_kernel'),
          bias: cfg.use_bias === false ? null : weight(name, 'bias'),
        });
        return;
      case 'Dense': {
        const act = kerasAct(cfg.activation, name);
        nodes.push({
          ...base,
          kind: 'dense',
          units: cfg.units,
          act: act === 'softmax' ? 'none' : act,
          softmax: act === 'softmax',
          kernel: weight(name, 'kernel'),
          bias: cfg.use_bias === false ? null : weight(name, 'bias'),
        });
        return;
      }
      case 'BatchNormalization': {
        const axis = Array.isArray(cfg.axis) ? cfg.axis : [cfg.axis ?? -1];
        if (axis.length !== 1 || (axis[0] !== -1 && axis[0] !== 3))
          fail(`unsupported batch norm axis ${JSON.stringify(cfg.axis)} in ${where} (only the channel axis)`);
        nodes.push({
          ...base,
          kind: 'bn',
          bn: {
            gamma: cfg.scale === false ? null : weight(name, 'gamma'),
            beta: cfg.center === false ? null : weight(name, 'beta'),
            mean: weight(name, 'moving_mean'),
            variance: weight(name, 'moving_variance'),
            epsilon: cfg.epsilon ?? 1e-3,
          },
        });
        return;
      }
      case 'ReLU': {
        if ((cfg.negative_slope ?? 0) !== 0 || (cfg.threshold ?? 0) !== 0)
          fail(`unsupported ReLU with negative_slope/threshold in ${where}`);
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
        nodes.push({
          ...base,
          kind: 'avgpool',
          kernel,
          strides: cfg.strides == null ? kernel : pair(cfg.strides, `strides of ${where}`),
          padding: cfg.padding,
          global: false,
        });
        return;
      }
      case 'GlobalAveragePooling2D':
        nodes.push({ ...base, kind: 'avgpool', global: true, padding: 'valid', strides: [1, 1] });
        return;
      case 'ZeroPadding2D': {
        const p = cfg.padding ?? 1;
        const hw = Array.isArray(p)
          ? p.map((v) => pair(v, `padding of ${where}`))
          : [
              [p, p],
              [p, p],
            ];
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
