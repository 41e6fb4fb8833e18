// TensorFlow.js model files -> the compact op list the C engine builds its net from.
// Pure JS for browsers and Node alike: nothing here touches the DOM or Node at module top
// level. Three steps, one module each: tfjs-load.mjs fetches the files (model.json, the
// zoo's card.json, the weight shards), tfjs-read.mjs reads the manifest and either graph
// format into nodes, tfjs-compile.mjs compiles the nodes into engine ops; the engine
// (engine.mjs) then decodes the weights and resolves the graph constants. This file ties
// them together. Everything is refused with an EngineError that names the node, layer,
// weight or file at fault.
import { fail, sameShape, checkShape, readManifest, readGraph, readLayers, MAX_NODES } from './tfjs-read.mjs';
import { buildOps } from './tfjs-compile.mjs';
import { loadWeights, makeFetcher, checkShardPath, readJson, toUrl } from './tfjs-load.mjs';

export { resolveConstants } from './tfjs-compile.mjs';
export { loadWeights, makeFetcher, checkShardPath } from './tfjs-load.mjs';

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
    ops = buildOps(nodes, outputs, specs);
  } catch (e) {
    // the graph walks recurse along the longest chain of layers
    if (e instanceof RangeError && /call stack/i.test(e.message))
      fail('model graph is too deep to parse: a chain of thousands of layers (the engine runs at most 4096 ops)');
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
    fail(
      `model card '${card.id ?? '?'}' says the input is ${want.join('x')}, but the graph's input '${parsed.ops[0].name}' is ${native.join('x')}; the card does not describe this model`,
    );
  }
  const r = ci.range;
  if (r && !(Array.isArray(r) && r[0] === 0 && (r[1] === 1 || r[1] === 255))) {
    fail(`model card '${card.id ?? '?'}' gives the input range ${JSON.stringify(r)}; only [0,1] and [0,255] are supported`);
  }
  if (inputSize != null && card.input.sizes && !card.input.sizes.includes(Array.isArray(inputSize) ? inputSize[0] : inputSize)) {
    fail(
      `model card '${card.id ?? '?'}' lists input sizes ${JSON.stringify(card.input.sizes)}; ${JSON.stringify(inputSize)} is not one of them`,
    );
  }
}
