// ONNX Runtime as the inference peer of bench.mjs: the same backbone, exported by
// wasm/export-onnx.mjs from the engine's own weights (float32, the model's whole graph to
// its last layer, as the forward rows run it), timed on the same preprocessed pixels in
// onnxruntime-web (its WASM SIMD build, Node) or onnxruntime-node (native CPU, the floor).
// bench.mjs runs this in a child process per peer and thread count, like its own builds.
import { createRequire } from 'node:module';
import { exportBackboneOnnx } from '../wasm/export-onnx.mjs';

/**
 * Times batch 1 and 16 of `model` (an engine Model) in ONNX Runtime on `pixels` (16
 * preprocessed images, NHWC). peer: 'ort-web' or 'ort-node'; time(fn): bench.mjs's timer.
 * Returns { 1: ms, 16: ms, maxAbsDiff } (the largest difference from `expect`, the
 * engine's outputs for the first image).
 */
export async function ortForward({ peer, threads, model, pixels, expect, time }) {
  const [h, w, c] = model.inputShape;
  const bytes = exportBackboneOnnx(model, model.layers.length - 1);
  let ort, options;
  if (peer === 'ort-web') {
    ort = await import('onnxruntime-web');
    ort.env.wasm.numThreads = threads;
    options = { executionProviders: ['wasm'] };
  } else {
    ort = createRequire(import.meta.url)('onnxruntime-node');
    options = { executionProviders: ['cpu'], intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential' };
  }
  const session = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'all', ...options });
  const input = (n) => new ort.Tensor('float32', pixels.subarray(0, n * h * w * c), [n, h, w, c]);
  const out = {};
  for (const n of [1, 16]) {
    const x = input(n);
    out[n] = await time(() => session.run({ input: x }));
  }
  const got = (await session.run({ input: input(1) })).output.data;
  out.maxAbsDiff = expect.reduce((m, v, i) => Math.max(m, Math.abs(v - got[i])), 0);
  await session.release();
  return out;
}
