// Runs native C tests compiled to WASM with SIMD (build/test_<name>.wasm, made by `make
// wasm`) under Node's WASI: the tt_*_simd kernels, which exist only in that build, are
// checked against the same references as the scalar ones, and every backward pass against
// finite differences in the build users run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, openSync, closeSync, mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WASI } from 'node:wasi';
import { hasRelaxedSimd } from '../wasm/module.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

// Runs a standalone WASM program with a WASI preview1 host. Emscripten may import a few
// non-WASI hooks (env.emscripten_notify_memory_growth, ...): they only notify, so no-op
// stubs are enough. Output goes to temporary files so it can be inspected and shown.
async function runWasi(path, args = []) {
  const module = await WebAssembly.compile(readFileSync(path));
  const dir = mkdtempSync(join(tmpdir(), 'tt-wasi-'));
  const outPath = join(dir, 'stdout'), errPath = join(dir, 'stderr');
  try {
    const out = openSync(outPath, 'w'), err = openSync(errPath, 'w');
    let code;
    try {
      const wasi = new WASI({
        version: 'preview1', args: [path, ...args], env: {}, returnOnExit: true,
        stdout: out, stderr: err,
      });
      const imports = { wasi_snapshot_preview1: wasi.wasiImport };
      for (const imp of WebAssembly.Module.imports(module)) {
        if (imp.module === 'wasi_snapshot_preview1' || imp.kind !== 'function') continue;
        (imports[imp.module] ??= {})[imp.name] = () => 0;
      }
      const instance = await WebAssembly.instantiate(module, imports);
      code = wasi.start(instance);
    } finally {
      closeSync(out);
      closeSync(err);
    }
    return { code, stdout: readFileSync(outPath, 'utf8'), stderr: readFileSync(errPath, 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// The -relaxed programs are the same tests built with relaxed SIMD (FMA); they need a
// runtime that has it (Node 20: --experimental-wasm-relaxed-simd, as tests/relaxed.test.mjs runs this file).
for (const [name, minChecks, relaxed] of [['kernels', 1000], ['net', 30], ['kernels', 1000, true], ['net', 30, true]]) {
  const skip = relaxed && !hasRelaxedSimd() && 'this runtime has no relaxed SIMD';
  test(`${name} unit tests pass in WASM SIMD${relaxed ? ' (relaxed-SIMD build)' : ''}`, { skip }, async (t) => {
    const wasmPath = join(root, 'build', `test_${name}${relaxed ? '-relaxed' : ''}.wasm`);
    assert.ok(existsSync(wasmPath), `${wasmPath} missing: run \`make wasm\` first`);
    const { code, stdout, stderr } = await runWasi(wasmPath);
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
