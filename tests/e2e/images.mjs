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
