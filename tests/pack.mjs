// The npm package as a user gets it: `npm pack` of this tree, installed from the tarball
// into an empty temp folder (offline: the package has no dependencies), with the examples
// copied in and two classes of real texture crops written as PNG files. Used by
// tests/package.test.mjs (Node) and tests/e2e/package.test.mjs (Chromium).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { ROOT } from './helpers.mjs';
import { photoCrops } from './e2e/images.mjs';

export const CLASSES = ['brick', 'grass'];
const npm = (args, cwd) => execFileSync('npm', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120000 });

/**
 * Packs and installs into a fresh folder: { dir, tarball, pack (npm's JSON of the
 * tarball), pkg (the installed package folder), data: {train: {class: [files]}, held:
 * [{label, file}]} }. The examples go to <app>/node/ and <app>/ (browser); esbuild and
 * @types/node (what a demo builder would add) are linked from this repo's node_modules.
 */
export async function packAndInstall() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tinytune-pkg-'));
  const [pack] = JSON.parse(npm(['pack', '--json', '--pack-destination', dir], ROOT));
  const tarball = path.join(dir, pack.filename);
  const app = path.join(dir, 'app');
  fs.mkdirSync(app);
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  npm(['install', '--offline', '--ignore-scripts', '--no-audit', '--no-fund', tarball], app);
  const nm = path.join(app, 'node_modules');
  fs.mkdirSync(path.join(nm, '@types'), { recursive: true });
  fs.symlinkSync(path.join(ROOT, 'node_modules', 'esbuild'), path.join(nm, 'esbuild'));
  fs.symlinkSync(path.join(ROOT, 'node_modules', '@types', 'node'), path.join(nm, '@types', 'node'));
  // The browser examples go to the project's root, beside node_modules/ (the import map's
  // ./node_modules/tinytune/...); the Node one to node/.
  fs.cpSync(path.join(ROOT, 'examples', 'browser'), app, { recursive: true });
  fs.cpSync(path.join(ROOT, 'examples', 'node'), path.join(app, 'node'), { recursive: true });
  const tsconfig = JSON.parse(fs.readFileSync(path.join(ROOT, 'examples', 'tsconfig.json'), 'utf8'));
  fs.writeFileSync(path.join(app, 'tsconfig.json'), JSON.stringify({ ...tsconfig, include: ['node/*.mjs', '*.mjs'] }));

  const data = { train: {}, held: [] };
  for (const [k, label] of CLASSES.entries()) {
    const { train, held } = await photoCrops(`${label}.png`, { count: 8, held: 2, seed: k + 1 });
    const folder = path.join(app, 'data', label);
    fs.mkdirSync(folder, { recursive: true });
    data.train[label] = train.map((t) => (fs.writeFileSync(path.join(folder, t.name), t.buffer), path.join(folder, t.name)));
    for (const h of held) {
      const file = path.join(app, 'data', h.name);
      fs.writeFileSync(file, h.buffer);
      data.held.push({ label, file });
    }
  }
  return { dir, app, tarball, pack, pkg: path.join(nm, 'tinytune'), data };
}
