// Writes a classifier as a TensorFlow.js layers model (a Keras functional model in tfjs's
// model.json format, float32 weights in one weights.bin) that tf.loadLayersModel opens and
// tensorflowjs_converter turns into Keras: either the whole path from image to probabilities
// or the trainable part alone. The ops come from export-ops.mjs; each engine op type is one
// entry of LAYERS below, each activation one entry of ACTIVATIONS.
import { exportGraph, exportMetadata, unsupported, namer } from './export-ops.mjs';

const FORMAT = 'TensorFlow.js layers';

// Each entry appends the Keras layers for one op and returns the name of the layer that
// holds its output. ctx: layer(className, name, config, inputs), weight(name, shape, data),
// flat(i) (whether op i's output is a vector, not an image), inShape(i).
const LAYERS = {
  conv2d: (ctx, o, x, name) => conv(ctx, o, x, name, 'Conv2D'),
  depthwise: (ctx, o, x, name) => conv(ctx, o, x, name, 'DepthwiseConv2D'),
  dense(ctx, o, x, name) {
    const [ih, iw, ic] = ctx.inShape(o.in0);
    if (!ctx.flat(o.in0)) x = ctx.layer('Flatten', `${name}_flatten`, { data_format: 'channels_last' }, [x]);
    x = ctx.layer('Dense', name, { units: o.shape[2], activation: 'linear', use_bias: true }, [x]);
    ctx.weight(`${x}/kernel`, [ih * iw * ic, o.shape[2]], o.weights);
    ctx.weight(`${x}/bias`, [o.shape[2]], o.bias);
    return x;
  },
  add: (ctx, o, x, name) => ctx.layer('Add', name, {}, [x, ctx.output(o.in1)]),
  avgpool(ctx, o, x, name) {
    if (o.pads.some(Boolean))
      x = ctx.layer('ZeroPadding2D', `${name}_pad`, { padding: [o.pads.slice(0, 2), o.pads.slice(2)], data_format: 'channels_last' }, [x]);
    return ctx.layer(
      'AveragePooling2D',
      name,
      { pool_size: o.kernel, strides: o.strides, padding: o.same ? 'same' : 'valid', data_format: 'channels_last' },
      [x],
    );
  },
  // The graph's own preprocessing (MobileNetV2's x*2-1); Rescaling is in tfjs 4 and Keras 2.6+.
  affine: (ctx, o, x, name) => ctx.layer('Rescaling', name, { scale: o.scale, offset: o.offset }, [x]),
  dropout: (ctx, o, x, name) => ctx.layer('Dropout', name, { rate: o.scale }, [x]),
  act: (ctx, o, x) => x, // the activation itself is added below, as for every op
  softmax: (ctx, o, x, name) => ctx.layer('Activation', name, { activation: 'softmax' }, [x]),
};

function conv(ctx, o, x, name, cls) {
  const [t, b, l, r] = o.pads;
  if (t || b || l || r)
    x = ctx.layer(
      'ZeroPadding2D',
      `${name}_pad`,
      {
        padding: [
          [t, b],
          [l, r],
        ],
        data_format: 'channels_last',
      },
      [x],
    );
  const common = {
    kernel_size: o.kernel,
    strides: o.strides,
    padding: o.same ? 'same' : 'valid',
    data_format: 'channels_last',
    dilation_rate: [1, 1],
    activation: 'linear',
    use_bias: true,
  };
  const cin = ctx.inShape(o.in0)[2],
    c = o.shape[2];
  if (cls === 'Conv2D') {
    x = ctx.layer('Conv2D', name, { ...common, filters: c }, [x]);
    ctx.weight(`${x}/kernel`, [...o.kernel, cin, c], o.weights); // both [kh][kw][cin][cout]
  } else {
    x = ctx.layer('DepthwiseConv2D', name, { ...common, depth_multiplier: 1 }, [x]);
    ctx.weight(`${x}/depthwise_kernel`, [...o.kernel, cin, 1], o.weights); // both [kh][kw][c]
  }
  ctx.weight(`${x}/bias`, [c], o.bias);
  return x;
}

// The activation fused into an op, as a layer after it (null: none).
const ACTIVATIONS = {
  none: null,
  relu: (ctx, x, name) => ctx.layer('ReLU', `${name}_relu`, { max_value: null, negative_slope: 0, threshold: 0 }, [x]),
  relu6: (ctx, x, name) => ctx.layer('ReLU', `${name}_relu6`, { max_value: 6, negative_slope: 0, threshold: 0 }, [x]),
};

/**
 * A classifier as a tfjs layers model. opts.whole: from the image (224x224x3 in [0,1])
 * to probabilities, the backbone's layers marked trainable: false; else the trainable part
 * alone, from the boundary activation. Returns { modelJson, weightData, metadata }.
 */
export function exportTfjs(classifier, opts = {}) {
  const graph = exportGraph(classifier, opts);
  const { modelJson, weightData } = toLayersModel(graph);
  return { modelJson, weightData, metadata: exportMetadata(graph, 'tfjs-layers') };
}

/** The files of an export, by name: model.json, weights.bin and metadata.json (bytes). */
export function tfjsFiles({ modelJson, weightData, metadata }) {
  const enc = new TextEncoder();
  return {
    'model.json': enc.encode(JSON.stringify(modelJson)),
    'weights.bin': weightData,
    'metadata.json': enc.encode(JSON.stringify(metadata, null, 2)),
  };
}

/** The layers model of a graph from export-ops.mjs: { modelJson, weightData }. */
export function toLayersModel({ ops, frozen, labels }) {
  const layers = [],
    specs = [],
    chunks = [];
  const uniq = namer();
  const outName = [],
    flat = [];
  let trainable = false;
  const ctx = {
    layer(cls, name, config, inputs) {
      const n = uniq(name);
      layers.push({
        class_name: cls,
        name: n,
        config: { name: n, trainable, ...config },
        inbound_nodes: inputs.length ? [inputs.map((i) => [i, 0, 0, {}])] : [],
      });
      return n;
    },
    weight(name, shape, data) {
      specs.push({ name, shape, dtype: 'float32' });
      chunks.push(data);
    },
    flat: (i) => flat[i],
    inShape: (i) => ops[i].shape,
    output: (i) => outName[i],
  };
  // A 1x1xC input that only dense layers read is a plain vector (the pooled feature).
  const vectorIn =
    ops[0].shape[0] === 1 && ops[0].shape[1] === 1 && ops.slice(1).every((o) => ['dense', 'dropout', 'act'].includes(o.type));
  ops.forEach((o, i) => {
    trainable = i >= frozen;
    const [h, w, c] = o.shape;
    if (i === 0) {
      outName[0] = ctx.layer(
        'InputLayer',
        'input',
        { batch_input_shape: vectorIn ? [null, c] : [null, h, w, c], dtype: 'float32', sparse: false },
        [],
      );
      flat[0] = vectorIn;
      return;
    }
    const write = LAYERS[o.type];
    if (!write) throw unsupported(FORMAT, o);
    if (!(o.act in ACTIVATIONS)) throw unsupported(FORMAT, o, true);
    let x = write(ctx, o, outName[o.in0], o.name);
    if (ACTIVATIONS[o.act]) x = ACTIVATIONS[o.act](ctx, x, o.name);
    flat[i] = o.type === 'dense' || (flat[o.in0] && o.type !== 'add');
    outName[i] = x;
  });
  trainable = true;
  const last = ops[ops.length - 1];
  const probs =
    last.type === 'softmax'
      ? outName[ops.length - 1]
      : ctx.layer('Activation', 'probabilities', { activation: 'softmax' }, [outName[ops.length - 1]]);
  const weightData = new Float32Array(chunks.reduce((a, d) => a + d.length, 0));
  let at = 0;
  for (const d of chunks) (weightData.set(d, at), (at += d.length));
  return {
    modelJson: {
      format: 'layers-model',
      generatedBy: 'tinytune',
      convertedBy: null,
      modelTopology: {
        class_name: 'Model',
        keras_version: '2.2.4',
        backend: 'tensorflow',
        config: { name: 'tinytune', layers, input_layers: [[outName[0], 0, 0]], output_layers: [[probs, 0, 0]] },
      },
      weightsManifest: [{ paths: ['weights.bin'], weights: specs }],
      userDefinedMetadata: { labels },
    },
    weightData: new Uint8Array(weightData.buffer),
  };
}
