// The relaxed-SIMD build (build/tinytune-relaxed.wasm: FMA through f32x4.relaxed_madd,
// made by a post-link opcode rewrite, see tools/relaxed_fma.mjs). Whether the rewrite
// kept each multiply-add's operands in the right order shows in the kernel tests of the
// rewritten test programs (build/test_*-relaxed.wasm, run by tests/c_wasm.test.mjs, in a
// flagged child Node where needed) and in the engine's agreement with tfjs. Node 20 validates it
// only with --experimental-wasm-relaxed-simd, so the checks that run it are made in a
// child Node started with that flag; this process (without the flag) checks that the
// loader falls back to the plain SIMD build instead of failing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadModule, hasRelaxedSimd } from '../wasm/module.mjs';
import { rewrite } from '../tools/relaxed_fma.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const FLAG = '--experimental-wasm-relaxed-simd';
// Without NODE_TEST_CONTEXT, which makes a nested `node --test` skip its files.
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_TEST_CONTEXT'));
const child = (args, timeout = 600_000) => spawnSync(process.execPath, [FLAG, ...args], { cwd: root, encoding: 'utf8', timeout, env });
const flagWorks = child(['-e', `import('./wasm/module.mjs').then((m) => process.exit(m.hasRelaxedSimd() ? 0 : 3))`], 60_000).status === 0;

test('the relaxed builds (one thread and threaded) exist and hold only standard opcodes', () => {
  for (const file of ['tinytune-relaxed.wasm', 'tinytune-mt-relaxed.wasm']) {
    const path = join(root, 'build', file);
    assert.ok(existsSync(path), `${path} missing: run \`make wasm\` first`);
    const bytes = readFileSync(path);
    // Already rewritten: a second pass finds no pre-standard FMA left, and decodes every
    // function body (atomics included) to its end without meeting an unknown opcode.
    assert.equal(rewrite(bytes).rewritten, 0, file);
    if (flagWorks)
      assert.equal(
        child(['-e', `process.exit(WebAssembly.validate(require('fs').readFileSync(${JSON.stringify(path)})) ? 0 : 1)`]).status,
        0,
        file,
      );
  }
});

test('the opcode rewrite: only real f32x4.fma instructions, and a*b + c afterwards', () => {
  // (func (result v128) v128.const 2 (x4)  v128.const 3  v128.const 4  f32x4.fma) with
  // 0xfd 0xaf 0x01 also inside the first constant's bytes, which must stay.
  const c = (v) => [253, 12, ...new Uint8Array(new Float32Array([v, v, v, v]).buffer)];
  const first = [253, 12, 0xfd, 0xaf, 0x01, 0, ...new Array(12).fill(0)];
  const body = [0, ...first, 26, ...c(2), ...c(3), ...c(4), 253, 0xaf, 0x01, 11]; // drop the first
  const mod = new Uint8Array([
    0,
    97,
    115,
    109,
    1,
    0,
    0,
    0,
    1,
    5,
    1,
    96,
    0,
    1,
    123,
    3,
    2,
    1,
    0,
    7,
    5,
    1,
    1,
    102,
    0,
    0,
    10,
    body.length + 2,
    1,
    body.length,
    ...body,
  ]);
  const { bytes, rewritten } = rewrite(mod);
  assert.equal(rewritten, 1);
  assert.deepEqual([...bytes.slice(bytes.length - 4, bytes.length - 1)], [253, 0x85, 0x02]);
  assert.ok(bytes.includes(0xaf), 'the constant keeps its bytes');
  assert.throws(() => rewrite(Uint8Array.from([...mod.slice(0, mod.length - 4), 253, 0xb0, 0x01, 11])), /pre-standard/);
  if (flagWorks) {
    // valid as standard relaxed SIMD (what it computes is for the kernel tests)
    const r = child(['-e', `process.exit(WebAssembly.validate(Uint8Array.from(${JSON.stringify([...bytes])})) ? 0 : 1)`]);
    assert.equal(r.status, 0, r.stderr);
  }
});

test('without relaxed SIMD the loader picks the plain SIMD build', async () => {
  if (hasRelaxedSimd()) return; // this runtime has it by default: nothing to fall back from
  const m = await loadModule();
  assert.equal(m.simd, true);
  assert.equal(m.relaxed, false);
});

test('with relaxed SIMD: the loader picks it, and the engine against tfjs', { skip: !flagWorks && 'this Node has no relaxed SIMD' }, () => {
  // The loader's choice, then the tfjs comparison (tests/engine, whose SIMD build is now
  // the relaxed one) in the flagged child. (tests/c_wasm runs the relaxed C tests itself.)
  const pick = child([
    '-e',
    `import('./wasm/module.mjs').then(async (m) => { const x = await m.loadModule(); process.exit(x.simd && x.relaxed ? 0 : 1); })`,
  ]);
  assert.equal(pick.status, 0, `the loader did not pick the relaxed build\n${pick.stderr}`);
  const r = child(['--test', '--test-reporter=tap', 'tests/engine.test.mjs'], 900_000);
  const out = `${r.stdout}\n${r.stderr}`;
  assert.equal(
    r.status,
    0,
    out
      .split('\n')
      .filter((l) => /not ok|Error|error/.test(l))
      .slice(0, 30)
      .join('\n'),
  );
  assert.match(out, /# fail 0/);
  for (const line of out.split('\n').filter((l) => /worst max-abs|passed, 0 failed/.test(l))) console.log(line.trim());
});
