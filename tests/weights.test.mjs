// The one weight decoder, C's tt_weights_decode (src/weights.c), bit for bit against
// TensorFlow.js 4.22's own (tf.io.decodeWeights): every float16 bit pattern, every uint8
// and uint16 code under an awkward scale and min, float32 patterns from every exponent
// (subnormals and -0 included), then every weight of the two zoo models as shipped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadModule } from '../wasm/module.mjs';
import { loadModelFiles } from '../wasm/tfjs.mjs';
import { ROOT } from './helpers.mjs';

const tf = await import('@tensorflow/tfjs-core');
await import('@tensorflow/tfjs-backend-cpu');
await tf.setBackend('cpu');
const m = await loadModule({ threads: 1 });

// Decodes n values of `spec` from bytes with the engine.
function engineDecode(spec, bytes) {
  const n = spec.shape.reduce((a, b) => a * b, 1),
    q = spec.quantization;
  const enc = m.abi.value('encoding', q ? q.dtype : spec.dtype);
  return m.scoped((t) => {
    const src = t(m.put(bytes)),
      dst = t(m.alloc(n * 4));
    m.check(m.x.tt_weights_decode(t(m.putString(spec.name)), src, bytes.length, n, enc, q?.min ?? 0, q?.scale ?? 1, dst));
    return m.floats(dst, n);
  });
}

// The two decodings' bit patterns, so -0 and 0 differ; the first few mismatches named.
function sameBits(ours, ref, what) {
  const a = new Uint32Array(ours.buffer, ours.byteOffset, ours.length),
    b = new Uint32Array(ref.buffer, ref.byteOffset, ref.length);
  assert.equal(a.length, b.length, what);
  const bad = [];
  for (let i = 0; i < a.length && bad.length < 5; i++) if (a[i] !== b[i]) bad.push(`[${i}] ${ours[i]} vs ${ref[i]}`);
  assert.deepEqual(bad, [], `${what}: engine vs tfjs`);
}

function check(spec, bytes) {
  const ref = tf.io.decodeWeights(bytes.slice().buffer, [spec])[spec.name];
  sameBits(engineDecode(spec, bytes), ref.dataSync(), `${spec.name} (${spec.quantization?.dtype ?? spec.dtype})`);
  ref.dispose();
  return bytes.length;
}

test('float16: every finite bit pattern', () => {
  const codes = Uint16Array.from({ length: 65536 }, (_, i) => i).filter((h) => ((h >> 10) & 31) !== 31);
  check({ name: 'half', shape: [codes.length], dtype: 'float32', quantization: { dtype: 'float16' } }, new Uint8Array(codes.buffer));
});

test('uint8 and uint16 codes: every code, with a scale and min that do not round nicely', () => {
  for (const [min, scale] of [
    [-1.5707963267948966, 0.012345678901234568],
    [0.1, 1e-7],
    [-3.4e3, 27.000000000000004],
  ]) {
    check(
      { name: 'u8', shape: [256], dtype: 'float32', quantization: { dtype: 'uint8', min, scale } },
      Uint8Array.from({ length: 256 }, (_, i) => i),
    );
    const u16 = Uint16Array.from({ length: 65536 }, (_, i) => i);
    check({ name: 'u16', shape: [65536], dtype: 'float32', quantization: { dtype: 'uint16', min, scale } }, new Uint8Array(u16.buffer));
  }
});

test('float32: patterns from every exponent, subnormals and -0 included', () => {
  const bits = [0, 0x80000000, 1, 0x807fffff, 0x7f7fffff, 0xff7fffff];
  let s = 12345;
  for (let e = 0; e < 255; e++) {
    for (let k = 0; k < 16; k++) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      bits.push((((k & 1) << 31) | (e << 23) | (s & 0x7fffff)) >>> 0);
    }
  }
  check({ name: 'f32', shape: [bits.length], dtype: 'float32' }, new Uint8Array(Uint32Array.from(bits).buffer));
});

test('every weight of the zoo models as shipped (uint8-quantized)', async () => {
  for (const id of ['mobilenet_v2_mid', 'mobilenet_v2']) {
    const { json, parsed, weightBytes } = await loadModelFiles(join(ROOT, 'models', id));
    const dtypes = new Set();
    for (const spec of json.weightsManifest.flatMap((g) => g.weights)) {
      if (spec.dtype !== 'float32') continue; // int32 constants: tested through the Mean ops
      const at = parsed.specs.get(spec.name);
      check(spec, weightBytes.subarray(at.offset, at.offset + at.byteLength));
      dtypes.add(spec.quantization?.dtype ?? spec.dtype);
    }
    assert.deepEqual([...dtypes], ['uint8'], id);
  }
});

test('refuses short input and non-finite values, naming the weight', () => {
  const spec = { name: 'w/short', shape: [3], dtype: 'float32' };
  assert.throws(() => engineDecode(spec, new Uint8Array(11)), /weight 'w\/short' is truncated: needs 12 bytes, 11 available/);
  assert.throws(
    () => engineDecode({ name: 'w/inf', shape: [1], dtype: 'float32', quantization: { dtype: 'float16' } }, new Uint8Array([0, 0x7c])),
    /weight 'w\/inf' has a non-finite value \(inf\) at index 0/,
  );
});
