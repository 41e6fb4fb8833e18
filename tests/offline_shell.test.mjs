// The page works offline only if the service worker precaches every module it loads
// before the worker takes control (web/sw.js registers once the page is usable): its
// SHELL list must hold the page's whole static import graph, from web/app.mjs and from
// the entry points started as workers (the engine's worker, the lent threads', the
// thumbnail worker). A module added by a split and missing from SHELL broke offline
// reloads once; this finds such a module by name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT } from './helpers.mjs';

const ENTRIES = ['web/app.mjs', 'wasm/worker.mjs', 'wasm/thread-entry.mjs', 'web/files.mjs'];

function importGraph(entries) {
  const seen = new Set(),
    todo = [...entries];
  while (todo.length) {
    const f = todo.pop();
    if (seen.has(f)) continue;
    seen.add(f);
    const src = fs.readFileSync(path.join(ROOT, f), 'utf8');
    for (const m of src.matchAll(/^\s*(?:import|export)\s[^'"]*?from\s*['"](\.{1,2}\/[^'"]+)['"]/gm))
      todo.push(path.posix.normalize(path.posix.join(path.posix.dirname(f), m[1])));
  }
  return [...seen].sort();
}

test("the service worker's app shell holds every module the page and its workers import", () => {
  const sw = fs.readFileSync(path.join(ROOT, 'web/sw.js'), 'utf8');
  const shell = new Set([...sw.slice(sw.indexOf('const SHELL'), sw.indexOf('].map')).matchAll(/^\s*'([^'\n]*)',?\s*$/gm)].map((m) => m[1]));
  const graph = importGraph(ENTRIES);
  assert.ok(graph.length > 15, `the import graph has only ${graph.length} modules: the parser above is broken`);
  const missing = graph.filter((f) => !shell.has(f));
  assert.deepEqual(missing, [], `web/sw.js SHELL lacks ${missing.join(', ')}: offline reloads would fail to load them`);
});

// The cold start preloads web/app.mjs's import graph (web/index.html's modulepreload links)
// rather than waiting on one level of imports at a time; a module left out is fetched late,
// a stale one (moved by a split) is a wasted 404.
test('index.html preloads exactly the modules web/app.mjs imports', () => {
  const html = fs.readFileSync(path.join(ROOT, 'web/index.html'), 'utf8');
  const preloads = [...html.matchAll(/<link rel="modulepreload" href="\/([^"]+)">/g)].map((m) => m[1]).sort();
  const graph = importGraph(['web/app.mjs']).filter((f) => f !== 'web/app.mjs');
  assert.ok(graph.includes('web/panel-train.mjs'), 'the walk follows the page imports');
  assert.deepEqual(preloads, graph);
});
