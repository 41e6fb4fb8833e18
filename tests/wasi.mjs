// Runs a standalone WASM program (the C unit tests built by `make wasm`) under Node's WASI,
// in this process or, for the relaxed-SIMD builds on a Node that has relaxed SIMD only
// behind a flag, in a child Node with --experimental-wasm-relaxed-simd:
//   node --experimental-wasm-relaxed-simd tests/wasi.mjs build/test_kernels-relaxed.wasm
// prints {code, stdout, stderr} as JSON.
import { readFileSync, openSync, closeSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { WASI } from 'node:wasi';

// Runs a standalone WASM program with a WASI preview1 host. Emscripten may import a few
// non-WASI hooks (env.emscripten_notify_memory_growth, ...): they only notify, so no-op
// stubs are enough. Output goes to temporary files so it can be inspected and shown.
export async function runWasi(path, args = []) {
  const module = await WebAssembly.compile(readFileSync(path));
  const dir = mkdtempSync(join(tmpdir(), 'tt-wasi-'));
  const outPath = join(dir, 'stdout'),
    errPath = join(dir, 'stderr');
  try {
    const out = openSync(outPath, 'w'),
      err = openSync(errPath, 'w');
    let code;
    try {
      const wasi = new WASI({
        version: 'preview1',
        args: [path, ...args],
        env: {},
        returnOnExit: true,
        stdout: out,
        stderr: err,
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

export const RELAXED_FLAG = '--experimental-wasm-relaxed-simd';

/** runWasi in a child Node with relaxed SIMD switched on. */
export function runWasiRelaxed(path) {
  const r = spawnSync(process.execPath, [RELAXED_FLAG, fileURLToPath(import.meta.url), path], {
    encoding: 'utf8',
    timeout: 600_000,
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0) {
    throw new Error(
      `node ${RELAXED_FLAG} could not run ${path} (exit ${r.status}${r.signal ? `, ${r.signal}` : ''}): ${r.stderr.slice(0, 2000)}`,
    );
  }
  return JSON.parse(r.stdout);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const result = await runWasi(process.argv[2]);
  process.stdout.write(JSON.stringify(result));
}
