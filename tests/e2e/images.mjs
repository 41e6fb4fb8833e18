// Test images for the page: random crops of real photos (Debian's python3-skimage
// textures and photos), encoded as PNG (tests/png.mjs). Pixels come from the engine's own
// decoder, run in Node.
import fs from 'node:fs';
import path from 'node:path';
import { createEngine } from '../../wasm/engine.mjs';
import { SKIMAGE, crop as cropPixels, seeded } from '../helpers.mjs';
import { encodePng } from '../png.mjs';

export { SKIMAGE };

const crop = (img, x, y, s) => Buffer.from(encodePng(cropPixels(img, x, y, s, s)));

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
  const rand = seeded(seed);
  const train = [];
  for (let i = 0; i < count; i++) {
    const s = Math.min(top, img.width, 112 + Math.floor(rand() * 80));
    const x = Math.floor(rand() * (img.width - s)),
      y = Math.floor(rand() * (top - s));
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

/**
 * A y4m video (what Chromium's --use-file-for-fake-video-capture plays, looped) of one
 * image, squeezed to w x h: 4:2:0, full-range BT.601 ("C420jpeg").
 */
export function y4m({ width: iw, height: ih, rgb: data }, w = 320, h = 240, frames = 2) {
  const ch = data.length / (iw * ih);
  const px = (x, y) => {
    const i = (Math.min(ih - 1, Math.floor((y * ih) / h)) * iw + Math.min(iw - 1, Math.floor((x * iw) / w))) * ch;
    return [data[i], data[i + 1], data[i + 2]];
  };
  const Y = new Uint8Array(w * h),
    U = new Uint8Array((w / 2) * (h / 2)),
    V = new Uint8Array((w / 2) * (h / 2));
  const clamp = (v) => Math.max(0, Math.min(255, Math.round(v)));
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const [r, g, b] = px(x, y);
      Y[y * w + x] = clamp(0.299 * r + 0.587 * g + 0.114 * b);
    }
  for (let y = 0; y < h / 2; y++)
    for (let x = 0; x < w / 2; x++) {
      let r = 0,
        g = 0,
        b = 0;
      for (const [dx, dy] of [
        [0, 0],
        [1, 0],
        [0, 1],
        [1, 1],
      ]) {
        const p = px(2 * x + dx, 2 * y + dy);
        r += p[0] / 4;
        g += p[1] / 4;
        b += p[2] / 4;
      }
      U[y * (w / 2) + x] = clamp(128 - 0.168736 * r - 0.331264 * g + 0.5 * b);
      V[y * (w / 2) + x] = clamp(128 + 0.5 * r - 0.418688 * g - 0.081312 * b);
    }
  const parts = [Buffer.from(`YUV4MPEG2 W${w} H${h} F10:1 Ip A1:1 C420jpeg\n`)];
  for (let f = 0; f < frames; f++) parts.push(Buffer.from('FRAME\n'), Y, U, V);
  return Buffer.concat(parts);
}

/** A y4m video of an encoded image (a PNG from photoCrops), for Chromium's fake camera. */
export async function videoOf(buffer) {
  engine ??= await createEngine();
  return y4m(engine.decodeImage(new Uint8Array(buffer)));
}
