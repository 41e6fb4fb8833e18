// Test images for the page: random crops of real photos (Debian's python3-skimage
// textures and photos), encoded as PNG with a tiny encoder (node:zlib). Pixels come from
// the engine's own decoder, run in Node.
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { createEngine } from '../../wasm/engine.mjs';

export const SKIMAGE = '/usr/lib/python3/dist-packages/skimage/data';

const CRC_TABLE = new Int32Array(256).map((_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c;
});
function crc32(buf) {
  let c = -1;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}
function chunk(type, data) {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'ascii');
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/** An 8-bit RGB PNG (filter 0 on every row). */
export function encodePng(width, height, rgb) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (width * 3 + 1)] = 0;
    Buffer.from(rgb.buffer, rgb.byteOffset + y * width * 3, width * 3).copy(raw, y * (width * 3 + 1) + 1);
  }
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(raw, { level: 6 })), chunk('IEND', Buffer.alloc(0))]);
}

/** A small deterministic PRNG (mulberry32). */
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function crop({ width, rgb }, x, y, s) {
  const out = new Uint8Array(s * s * 3);
  for (let r = 0; r < s; r++) out.set(rgb.subarray(((y + r) * width + x) * 3, ((y + r) * width + x + s) * 3), r * s * 3);
  return encodePng(s, s, out);
}

let engine;
/**
 * Square crops of one skimage photo: `count` training crops from the top part of the image
 * (sizes 112..192 px at random places) and `held` held-out crops from its bottom strip, which
 * no training crop overlaps. Returns { train: [{name, mimeType, buffer}], held: [...] }.
 */
export async function photoCrops(file, { count = 10, held = 1, seed = 1, prefix = path.parse(file).name } = {}) {
  engine ??= await createEngine();
  const img = engine.decodeImage(new Uint8Array(fs.readFileSync(path.join(SKIMAGE, file))));
  const strip = Math.floor(img.height * 0.25);
  const top = img.height - strip;
  const rand = rng(seed);
  const train = [];
  for (let i = 0; i < count; i++) {
    const s = Math.min(top, img.width, 112 + Math.floor(rand() * 80));
    const x = Math.floor(rand() * (img.width - s)), y = Math.floor(rand() * (top - s));
    train.push({ name: `${prefix}-${String(i + 1).padStart(2, '0')}.png`, mimeType: 'image/png', buffer: crop(img, x, y, s) });
  }
  const heldOut = [];
  for (let i = 0; i < held; i++) {
    const s = Math.min(strip, img.width);
    const x = Math.floor(((img.width - s) * (i + 0.5)) / held);
    heldOut.push({ name: `${prefix}-heldout-${i + 1}.png`, mimeType: 'image/png', buffer: crop(img, x, top, s) });
  }
  return { train, held: heldOut };
}
