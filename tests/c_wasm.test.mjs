// Runs native C tests compiled to WASM with SIMD (build/test_<name>.wasm, made by `make
// wasm`) under Node's WASI: the tt_*_simd kernels, which exist only in that build, are
// checked against the same references as the scalar ones, and every backward pass against
// finite differences in the build users run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hasRelaxedSimd } from '../wasm/module.mjs';
import { runWasi, runWasiRelaxed } from './wasi.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

// The -relaxed programs are the same tests built with relaxed SIMD (FMA), the build every
// Chromium user runs. Where this runtime lacks relaxed SIMD (Node 20 without
// --experimental-wasm-relaxed-simd) they run in a child Node started with that flag;
// they are never skipped.
for (const [name, minChecks, relaxed] of [
  ['kernels', 1000],
  ['net', 30],
  ['kernels', 1000, true],
  ['net', 30, true],
]) {
  test(`${name} unit tests pass in WASM SIMD${relaxed ? ' (relaxed-SIMD build)' : ''}`, async (t) => {
    const wasmPath = join(root, 'build', `test_${name}${relaxed ? '-relaxed' : ''}.wasm`);
    assert.ok(existsSync(wasmPath), `${wasmPath} missing: run \`make wasm\` first`);
    const { code, stdout, stderr } = relaxed && !hasRelaxedSimd() ? runWasiRelaxed(wasmPath) : await runWasi(wasmPath);
    for (const line of stdout.trim().split('\n')) t.diagnostic(line);
    // The failing CHECKs are listed on stderr; show the first ones in the assertion.
    const failures = stderr.split('\n').filter(Boolean).slice(0, 40).join('\n');
    assert.equal(code, 0, `test_${name}.wasm exited with ${code}\n${failures}`);
    const m = new RegExp(`^${name}: (\\d+) passed, (\\d+) failed$`, 'm').exec(stdout);
    assert.ok(m, `no summary line in output:\n${stdout}`);
    assert.equal(Number(m[2]), 0);
    assert.ok(Number(m[1]) > minChecks, `suspiciously few checks ran: ${m[1]}`);
  });
}
