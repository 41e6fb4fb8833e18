// The nodes tfjs-read.mjs reads from a tfjs model, compiled into the compact op list the C
// engine builds its net from: one pass in graph order that fuses (batch norm, bias and
// activations into the conv or dense layer before them, padding into the conv after it,
// identity-like nodes into aliases), infers every shape and checks every weight against
// the op that uses it. Each node kind is one entry of COMPILE below. Then the
// inverted-residual blocks are found (what "train the last K blocks" counts), and, once
// the engine has decoded them, the graph constants are folded in (resolveConstants).
import { fail, fmtShape, product, sameShape, checkShape } from './tfjs-read.mjs';

const WEIGHTED = new Set(['conv2d', 'depthwise', 'dense']);

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
  ops.forEach((o, i) =>
    o.inputs.forEach((j) => {
      lastRead[j] = Math.max(lastRead[j], i);
    }),
  );
  const pointwise = (o) => o.type === 'conv2d' && o.kernel[0] === 1 && o.kernel[1] === 1 && o.strides[0] === 1 && o.strides[1] === 1;
  let start = -1,
    sawDepthwise = false,
    count = 0;
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
  const h = inHW[0] + pads[0] + pads[1],
    w = inHW[1] + pads[2] + pads[3];
  if (padding === 'same') return [Math.ceil(h / strides[0]), Math.ceil(w / strides[1])];
  if (h < kernel[0] || w < kernel[1]) fail(`${what}: kernel ${kernel[0]}x${kernel[1]} is larger than its ${h}x${w} input`);
  return [Math.ceil((h - kernel[0] + 1) / strides[0]), Math.ceil((w - kernel[1] + 1) / strides[1])];
}

// The compiler's state while it walks the nodes: the ops so far, where each node's output
// is (which op, whether flattened, padding waiting for the next conv), and who reads what.
class Compiler {
  constructor(nodes, outputs, specs) {
    const { order } = topoSort(nodes);
    this.order = order;
    this.specs = specs;
    this.consumers = new Map(nodes.map((n) => [n.name, []]));
    for (const n of nodes) for (const i of n.inputs) this.consumers.get(i).push(n);
    if (outputs.length === 0) outputs = nodes.filter((n) => this.consumers.get(n.name).length === 0).map((n) => n.name);
    for (const o of outputs) {
      if (!this.consumers.has(o)) fail(`model output '${o}' does not exist`);
      this.consumers.get(o).push(null); // a model output is a consumer no fusion may hide
    }
    this.ops = [];
    this.at = new Map(); // node name -> {op, flat, pads}
  }

  ref(name) {
    return this.at.get(name);
  }
  shapeOf(name) {
    return this.ops[this.ref(name).op].shape;
  }
  spec(name) {
    return this.specs.get(name);
  }

  // Consumers seen through identity-like nodes, which do not become ops
  effective(name) {
    return this.consumers.get(name).flatMap((c) => (c && (c.kind === 'alias' || c.kind === 'pad') ? this.effective(c.name) : [c]));
  }

  soleConsumer(name, node) {
    const c = this.effective(name);
    return c.length === 1 && c[0] === node;
  }

  expect(what, specName, shape) {
    if (specName && !sameShape(this.spec(specName).shape, shape)) {
      fail(`${what}: weight '${specName}' has shape ${fmtShape(this.spec(specName).shape)}, expected ${fmtShape(shape)}`);
    }
  }

  checkBn(what, bn, c) {
    for (const k of ['gamma', 'beta', 'mean', 'variance']) this.expect(what, bn[k], [c]);
    if (!(bn.epsilon >= 0)) fail(`${what}: invalid batch norm epsilon ${bn.epsilon}`);
  }

  addOp(node, fields, name = node.name) {
    const op = {
      name,
      type: fields.type,
      inputs: fields.inputs ?? node.inputs.map((i) => this.ref(i).op),
      aliases: [],
      block: null,
      kernel: [1, 1],
      strides: [1, 1],
      padding: 'valid',
      pads: [0, 0, 0, 0],
      act: 'none',
      channels: 0,
      scale: 1,
      offset: 0,
      weights: { kernel: null, bias: null, bn: null },
      shape: null,
      ...fields,
    };
    checkShape(op.shape, `output of ${op.type} '${name}'`);
    op.channels = op.shape[2];
    op.tail = name; // latest name whose output is this op's output, for fusion checks
    this.ops.push(op);
    this.at.set(node.name, { op: this.ops.length - 1, flat: false, pads: null });
    return op;
  }

  // A conv/depthwise/dense op may absorb the next stage only if nothing else reads it
  fusable(node) {
    const op = this.ops[this.ref(node.inputs[0]).op];
    return WEIGHTED.has(op.type) && this.soleConsumer(op.tail, node) ? op : null;
  }

  fuseInto(op, node) {
    op.aliases.push(node.name);
    op.tail = node.name;
    this.at.set(node.name, { op: this.ops.indexOf(op), flat: false, pads: null });
  }

  // Keras semantics: the layer name gives the activation's output (probabilities),
  // the pre-softmax logits stay reachable as "<layer>/logits".
  splitSoftmax(node, op) {
    this.addOp(node, { type: 'softmax', inputs: [this.ops.indexOf(op)], shape: op.shape.slice() }, `${node.name}/softmax`).aliases.push(
      node.name,
    );
  }
}

function conv(c, node, what) {
  const r = c.ref(node.inputs[0]);
  const inShape = c.shapeOf(node.inputs[0]);
  const ks = c.spec(node.kernel).shape;
  if (ks.length !== 4) fail(`${what}: kernel '${node.kernel}' has shape ${fmtShape(ks)}, expected [kh,kw,cin,cout]`);
  const [kh, kw, cin, cout] = ks;
  if (node.kernelSize && (kh !== node.kernelSize[0] || kw !== node.kernelSize[1])) {
    fail(`${what}: kernel '${node.kernel}' has shape ${fmtShape(ks)} but kernel_size is ${fmtShape(node.kernelSize)}`);
  }
  if (cin !== inShape[2]) fail(`${what}: kernel '${node.kernel}' has shape ${fmtShape(ks)} but the input has ${inShape[2]} channels`);
  if (node.kind === 'depthwise' && cout !== 1) fail(`${what}: unsupported depth multiplier ${cout} (kernel ${fmtShape(ks)}; only 1)`);
  if (node.filters != null && cout !== node.filters)
    fail(`${what}: kernel '${node.kernel}' has shape ${fmtShape(ks)} but filters is ${node.filters}`);
  const channels = node.kind === 'depthwise' ? cin : cout;
  const pads = r.pads ?? [0, 0, 0, 0];
  const hw = outSize(inShape, [kh, kw], node.strides, node.padding, pads, what);
  c.expect(what, node.bias, [channels]);
  if (node.bn) c.checkBn(what, node.bn, channels);
  const op = c.addOp(
    node,
    {
      type: node.kind,
      kernel: [kh, kw],
      strides: node.strides,
      padding: node.padding,
      pads: pads.slice(),
      act: node.act,
      weights: { kernel: node.kernel, bias: node.bias, bn: node.bn },
      shape: [...hw, channels],
    },
    node.softmax ? `${node.name}/logits` : node.name,
  );
  if (node.softmax) c.splitSoftmax(node, op);
}

// Each node kind: compile(c, node, what) appends its op(s) to c.ops, or folds the node
// into the op before it. `what` names the node in messages.
const COMPILE = {
  input(c, node) {
    if (c.ops.length) fail(`model has more than one input ('${c.ops[0].name}', '${node.name}'); exactly one is supported`);
    c.addOp(node, { type: 'input', inputs: [], shape: node.shape });
  },
  conv2d: conv,
  depthwise: conv,
  dense(c, node, what) {
    const in0 = node.inputs[0],
      r = c.ref(in0),
      inShape = c.shapeOf(in0);
    if (inShape[0] * inShape[1] !== 1 && !r.flat)
      fail(`${what}: applied to a ${inShape.join('x')} tensor without Flatten; only flat inputs are supported`);
    const ks = c.spec(node.kernel).shape;
    const cin = product(inShape);
    if (ks.length !== 2 || ks[0] !== cin)
      fail(`${what}: kernel '${node.kernel}' has shape ${fmtShape(ks)} but the input has ${cin} features`);
    if (node.units != null && ks[1] !== node.units)
      fail(`${what}: kernel '${node.kernel}' has shape ${fmtShape(ks)} but units is ${node.units}`);
    c.expect(what, node.bias, [ks[1]]);
    const op = c.addOp(
      node,
      { type: 'dense', act: node.act, weights: { kernel: node.kernel, bias: node.bias, bn: null }, shape: [1, 1, ks[1]] },
      node.softmax ? `${node.name}/logits` : node.name,
    );
    if (node.softmax) c.splitSoftmax(node, op);
  },
  bn(c, node, what) {
    const op = c.fusable(node);
    if (!op || op.weights.bn || op.act !== 'none') {
      fail(
        `${what} cannot be folded into the op before it (it must directly follow a conv, depthwise or dense layer with no activation and no other reader); standalone batch norm is not supported`,
      );
    }
    c.checkBn(what, node.bn, op.channels);
    op.weights.bn = node.bn;
    c.fuseInto(op, node);
  },
  bias(c, node, what) {
    const op = c.fusable(node);
    if (!op || op.weights.bias || op.weights.bn || op.act !== 'none') fail(`${what}: a standalone bias add is not supported`);
    c.expect(what, node.bias, [op.channels]);
    op.weights.bias = node.bias;
    c.fuseInto(op, node);
  },
  act(c, node) {
    const shape = c.shapeOf(node.inputs[0]).slice();
    if (node.act === 'hswish' || node.act === 'hsigmoid') {
      // their constants come from the weights: a standalone op (scale a, offset b)
      composeHard(c.addOp(node, { type: 'act', act: node.act, hard: { a: node.a, b: node.b }, shape }));
      return;
    }
    const op = c.fusable(node);
    if (op && op.act === 'none') {
      op.act = node.act;
      c.fuseInto(op, node);
      return;
    }
    c.addOp(node, { type: 'act', act: node.act, shape });
  },
  scalar(c, node) {
    const prevOp = c.ops[c.ref(node.inputs[0]).op];
    if (prevOp.type === 'affine' && c.soleConsumer(prevOp.tail, node)) {
      prevOp.terms.push(node.term);
      c.fuseInto(prevOp, node);
      composeAffine(prevOp);
      return;
    }
    composeAffine(c.addOp(node, { type: 'affine', terms: [node.term], shape: c.shapeOf(node.inputs[0]).slice() }));
  },
  add(c, node, what) {
    const shapes = node.inputs.map((i) => c.shapeOf(i));
    for (let i = 1; i < shapes.length; i++) {
      if (!sameShape(shapes[0], shapes[i]))
        fail(`${what}: input shapes differ: '${node.inputs[0]}' ${fmtShape(shapes[0])} vs '${node.inputs[i]}' ${fmtShape(shapes[i])}`);
    }
    c.addOp(node, { type: 'add', shape: shapes[0].slice() });
  },
  mean(c, node) {
    c.addOp(node, { type: 'mean', axes: node.axes, shape: [1, 1, c.shapeOf(node.inputs[0])[2]] });
    if (!node.keepDims) c.at.get(node.name).flat = true;
  },
  prelu(c, node, what) {
    const inShape = c.shapeOf(node.inputs[0]);
    const as = c.spec(node.alpha).shape;
    if (product(as) !== inShape[2] || as.at(-1) !== inShape[2])
      fail(`${what}: slope '${node.alpha}' has shape ${fmtShape(as)}, expected [${inShape[2]}]`);
    c.addOp(node, {
      type: 'prelu',
      weights: { kernel: node.alpha, bias: null, bn: null, kernelScale: node.alphaScale, kernelShift: node.alphaShift },
      shape: inShape.slice(),
    });
  },
  gate(c, node) {
    // the full tensor first, the 1x1xC gate second, whichever order the graph has
    const [a, b] = node.inputs.map((i) => c.shapeOf(i));
    const gateFirst = a[0] * a[1] === 1 && b[0] * b[1] !== 1;
    const [x, g] = gateFirst ? [node.inputs[1], node.inputs[0]] : node.inputs;
    const [sx, sg] = [c.shapeOf(x), c.shapeOf(g)];
    if (sg[0] !== 1 || sg[1] !== 1 || sg[2] !== sx[2]) {
      fail(`unsupported Mul of ${fmtShape(sx)} by ${fmtShape(sg)} at node '${node.name}' (only a tensor by a [1,1,channels] gate)`);
    }
    c.addOp(node, { type: 'gate', inputs: [c.ref(x).op, c.ref(g).op], shape: sx.slice() });
  },
  avgpool(c, node, what) {
    const inShape = c.shapeOf(node.inputs[0]);
    const kernel = node.global ? inShape.slice(0, 2) : node.kernel;
    const hw = outSize(inShape, kernel, node.strides, node.padding, [0, 0, 0, 0], what);
    c.addOp(node, { type: 'avgpool', kernel, strides: node.strides, padding: node.padding, shape: [...hw, inShape[2]] });
  },
  softmax(c, node) {
    c.addOp(node, { type: 'softmax', shape: c.shapeOf(node.inputs[0]).slice() });
  },
  pad(c, node, what) {
    const bad = c.effective(node.name).find((x) => !x || (x.kind !== 'conv2d' && x.kind !== 'depthwise') || x.padding !== 'valid');
    if (bad !== undefined) fail(`${what} is not followed only by 'valid' convolutions; standalone padding is not supported`);
    const r = c.ref(node.inputs[0]);
    if (r.pads) fail(`${what} follows another padding layer; stacked padding is not supported`);
    c.ops[r.op].aliases.push(node.name);
    c.at.set(node.name, { ...r, pads: node.pads });
  },
  alias(c, node, what) {
    const r = c.ref(node.inputs[0]);
    const s = c.ops[r.op].shape;
    if (node.needs1x1 && s[0] * s[1] !== 1)
      fail(`${what}: cannot squeeze/reshape a ${s.join('x')} tensor; only 1x1 spatial tensors are supported`);
    if (node.size != null && node.size !== -1 && node.size !== product(s)) fail(`${what}: cannot reshape ${s.join('x')} to [${node.size}]`);
    c.ops[r.op].aliases.push(node.name);
    c.at.set(node.name, { op: r.op, flat: r.flat || node.flat, pads: r.pads });
  },
};

/** The engine ops for nodes (any order; see tfjs-read.mjs), outputs the model's declared outputs (none: every node nobody reads). */
export function buildOps(nodes, outputs, specs) {
  const c = new Compiler(nodes, outputs, specs);
  for (const node of c.order) {
    if (!Object.hasOwn(COMPILE, node.kind)) fail(`internal: unknown node kind '${node.kind}'`);
    COMPILE[node.kind](c, node, `${node.kind} '${node.name}'`);
  }
  for (const op of c.ops) delete op.tail;
  deriveBlocks(c.ops);
  return c.ops;
}

// x*scale + offset from the accumulated scalar terms; null until every constant is known
function composeAffine(op, values = new Map()) {
  let s = 1,
    o = 0;
  for (const t of op.terms) {
    const c = t.value ?? values.get(t.spec);
    if (c === undefined) {
      op.scale = op.offset = null;
      return;
    }
    if (t.op === 'mul') {
      s *= c;
      o *= c;
    } else if (t.op === 'add') o += c;
    else if (t.op === 'sub') o -= c;
    else {
      s = -s;
      o = c - o;
    } // rsub: c - x
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
