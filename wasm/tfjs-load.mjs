// TensorFlow.js model files, fetched: model.json, card.json and the weight shards, from a
// URL (fetch) in browsers, or from a path or file: URL (fs, through dynamic imports) in
// Node, each read with a size limit and checked against what the manifest declares.
import { EngineError } from './errors.mjs';
import { fail, fmtBytes, MAX_WEIGHT_BYTES } from './tfjs-read.mjs';

const MAX_JSON_BYTES = 64 * 2 ** 20; // model.json, card.json
const SHARD_SIZE = 4 * 1024 * 1024; // tensorflowjs_converter's default shard size
const isNode = () => typeof globalThis.process?.versions?.node === 'string';

/* ------------------------------------------------------------------------------ */
/* Loading shards                                                                  */
/* ------------------------------------------------------------------------------ */

function toBytes(data, path) {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return fail(`fetchShard('${path}') returned ${data === null ? 'null' : typeof data}; expected an ArrayBuffer or Uint8Array`);
}

// The converter cuts a group into fixed-size shards (4 MiB unless told otherwise), all
// full but the last. Only the group total is certain, so this layout is used solely to
// name the shard at fault once the total is wrong; null when the total does not fit it.
function shardSizes(group) {
  const n = group.paths.length,
    total = group.byteLength;
  if (n === 1) return [total];
  if (total > (n - 1) * SHARD_SIZE && total <= n * SHARD_SIZE)
    return group.paths.map((_, i) => (i < n - 1 ? SHARD_SIZE : total - (n - 1) * SHARD_SIZE));
  return null;
}

function sizeError(group, gi, got, loaded) {
  const expected = shardSizes(group);
  const i = expected ? got.findIndex((n, k) => n !== expected[k]) : -1;
  if (i >= 0) {
    return new EngineError(
      `weights shard ${group.paths[i]} is ${got[i] < expected[i] ? 'truncated' : 'too long'}: expected ${fmtBytes(expected[i])} bytes, got ${fmtBytes(got[i])}`,
    );
  }
  const which = `weights group ${gi + 1} (${group.paths.join(', ')})`;
  const short = loaded < group.byteLength;
  return new EngineError(
    `${which} is ${short ? 'truncated' : 'too long'}: expected ${fmtBytes(group.byteLength)} bytes in total, got ${short ? '' : 'at least '}${fmtBytes(loaded)}`,
  );
}

/**
 * Fetches all shards of all groups in manifest order into one Uint8Array (the layout
 * spec offsets refer to). fetchShard(path, onBytes?) -> Promise<ArrayBuffer|Uint8Array>;
 * onProgress(loadedBytes, totalBytes).
 */
export async function loadWeights(groups, fetchShard, onProgress) {
  const total = groups.reduce((s, g) => s + g.byteLength, 0);
  const out = new Uint8Array(total);
  let pos = 0;
  onProgress?.(0, total);
  for (const [gi, group] of groups.entries()) {
    const got = [];
    let inGroup = 0;
    for (const path of group.paths) {
      const start = pos;
      const onBytes = onProgress && ((n) => onProgress(Math.min(start + n, total), total));
      const bytes = toBytes(await fetchShard(path, onBytes), path);
      got.push(bytes.length);
      inGroup += bytes.length;
      if (inGroup > group.byteLength) throw sizeError(group, gi, got, inGroup);
      out.set(bytes, pos);
      pos += bytes.length;
      onProgress?.(pos, total);
    }
    if (inGroup !== group.byteLength) throw sizeError(group, gi, got, inGroup);
  }
  return out;
}

/* ------------------------------------------------------------------------------ */
/* Fetching files: browsers (fetch) and Node (fs for paths and file: URLs)         */
/* ------------------------------------------------------------------------------ */

const isUrlString = (s) => /^[a-z][a-z0-9+.-]+:/i.test(s) && !/^[a-z]:[\\/]/i.test(s); // not C:\...

// Resolves a URL or path to a URL. Directories get a trailing slash so that relative
// shard paths resolve inside them; in Node this is checked on disk, elsewhere a last
// segment without a dot is taken to be a directory.
export async function toUrl(source) {
  if (source instanceof URL) source = source.href;
  if (typeof source !== 'string' || !source) fail(`invalid model location ${JSON.stringify(source)}`);
  let url;
  if (isUrlString(source)) url = new URL(source);
  else if (isNode()) {
    const { pathToFileURL } = await import('node:url');
    const { resolve } = await import('node:path');
    url = pathToFileURL(resolve(source));
  } else {
    const base = globalThis.document?.baseURI ?? globalThis.location?.href;
    if (!base) fail(`cannot resolve relative model location '${source}' without a page URL`);
    url = new URL(source, base);
  }
  if (url.pathname.endsWith('/')) return url;
  let dir;
  if (url.protocol === 'file:' && isNode()) {
    const { stat } = await import('node:fs/promises');
    dir = await stat(url).then(
      (s) => s.isDirectory(),
      () => false,
    );
  } else dir = !url.pathname.split('/').pop().includes('.');
  if (dir) url.pathname += '/';
  return url;
}

const showUrl = (url) => (url.protocol === 'file:' ? decodeURIComponent(url.pathname) : url.href);

async function readUrl(url, what, onBytes, limit = MAX_WEIGHT_BYTES) {
  const where = `cannot load ${what} from ${showUrl(url)}`;
  const tooBig = (n) =>
    fail(`${where}: it is ${n == null ? 'larger than' : `${fmtBytes(n)} bytes, more than`} the limit of ${fmtBytes(limit)} bytes`);
  if (url.protocol === 'file:' && isNode()) {
    const { readFile, stat } = await import('node:fs/promises');
    let data;
    try {
      const st = await stat(url);
      if (st.isFile() && st.size > limit) tooBig(st.size);
      data = await readFile(url);
    } catch (e) {
      if (e.message.startsWith(where)) throw e;
      fail(`${where}: ${e.code === 'ENOENT' ? 'file not found (ENOENT)' : e.message}`);
    }
    if (data.length > limit) tooBig(data.length);
    onBytes?.(data.length);
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  }
  let res;
  try {
    res = await fetch(url);
  } catch (e) {
    fail(`${where}: ${e.message}`);
  }
  if (!res.ok) fail(`${where}: ${res.status} ${res.statusText}`.trimEnd());
  const declared = Number(res.headers?.get?.('content-length'));
  if (declared > limit) tooBig(declared);
  if (!res.body?.getReader) {
    const body = new Uint8Array(await res.arrayBuffer());
    return body.length > limit ? tooBig(body.length) : body;
  }
  // stream so progress moves during big shards
  const reader = res.body.getReader();
  const chunks = [];
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    n += value.length;
    if (n > limit) {
      // a server that never stops sending
      reader.cancel().catch(() => {});
      tooBig(null);
    }
    onBytes?.(n);
  }
  const out = new Uint8Array(n);
  let p = 0;
  for (const c of chunks) {
    out.set(c, p);
    p += c.length;
  }
  return out;
}

// A shard path from the manifest is untrusted: it must name a file in model.json's folder
// or below it, as tensorflowjs_converter writes them ('group1-shard1of2', 'weights/x.bin').
// For files this keeps a model.json from reading anything else on the disk; for URLs
// the same rule applies (a browser would keep '../x' on the same origin, but it would
// still leave the model's folder), so no '..' or '.' segment (nor its %2e spelling), no
// absolute path, drive, scheme or other origin, no backslash, query or fragment.
export function checkShardPath(path) {
  const refuse = (why) =>
    fail(
      `weights manifest path '${path}' is refused: ${why}; a shard must be a relative path inside model.json's folder (like 'group1-shard1of2' or 'weights/group1-shard1of2')`,
    );
  if (typeof path !== 'string' || !path) refuse('it is empty');
  if (/[\\]/.test(path)) refuse('it contains a backslash');
  if (/^[a-z][a-z0-9+.-]*:/i.test(path) || path.startsWith('//')) refuse('it is a URL or names a drive');
  if (path.startsWith('/')) refuse('it is an absolute path');
  if (/[?#]/.test(path)) refuse('it has a query or fragment');
  let decoded;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    refuse('it has a malformed %-escape');
  }
  for (const seg of decoded.split(/[\\/]/)) {
    if (seg === '..') refuse("it has a '..' segment, which leaves the model's folder");
    if (seg === '.' || seg === '') refuse("it has an empty or '.' segment");
  }
  return path;
}

/**
 * fetchShard for loadWeights. base: URL or path of model.json, or of its directory.
 * URLs are fetched (with streaming progress); paths and file: URLs are read with
 * node:fs in Node. Paths are checked by checkShardPath, and the resolved location must
 * still lie in the folder of model.json.
 */
export function makeFetcher(base) {
  let baseUrl;
  return async (path, onBytes) => {
    checkShardPath(path);
    baseUrl ??= await toUrl(base);
    const url = new URL(path, baseUrl);
    const folder = new URL('./', baseUrl);
    if (url.origin !== folder.origin || !url.href.startsWith(folder.href)) {
      // a second lock; checkShardPath already refuses this
      fail(`weights manifest path '${path}' is refused: it resolves to ${showUrl(url)}, outside model.json's folder ${showUrl(folder)}`);
    }
    return readUrl(url, `model shard '${path}'`, onBytes);
  };
}

export async function readJson(url, what) {
  const text = new TextDecoder().decode(await readUrl(url, what, null, MAX_JSON_BYTES));
  try {
    return JSON.parse(text);
  } catch (e) {
    return fail(`${what} at ${showUrl(url)} is not valid JSON: ${e.message}`);
  }
}
