// web/zip.mjs, the page's store-only zip writer: the CRC-32 check value, and archives that
// Info-ZIP's unzip tests (every CRC) and extracts byte for byte, names in UTF-8 included.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { crc32, zip } from '../web/zip.mjs';

test('CRC-32: the standard check value and the empty input', () => {
  assert.equal(crc32(new TextEncoder().encode('123456789')), 0xcbf43926);
  assert.equal(crc32(new Uint8Array(0)), 0);
});

test('unzip tests and extracts what zip wrote, byte for byte', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tt-zip-'));
  try {
    const big = new Uint8Array(300000).map((_, i) => (i * 2654435761) >>> 24);
    const files = {
      'model.json': new TextEncoder().encode('{"a":1}'),
      'weights.bin': big,
      'empty.txt': new Uint8Array(0),
      'étiquettes.json': new TextEncoder().encode('["chat"]'),
    };
    const file = path.join(dir, 'm.zip');
    fs.writeFileSync(file, zip(files));
    assert.match(execFileSync('unzip', ['-t', file], { encoding: 'utf8' }), /No errors detected/);
    execFileSync('unzip', ['-q', file, '-d', path.join(dir, 'out')]);
    for (const [name, bytes] of Object.entries(files))
      assert.deepEqual(new Uint8Array(fs.readFileSync(path.join(dir, 'out', name))), bytes, name);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
