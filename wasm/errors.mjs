// The one error type of the library, and reading C strings out of wasm memory: the leaf
// every other module imports (module.mjs, threads.mjs, the model reader, ...), so none
// of them needs another's.

/**
 * Every problem the library reports: bad input, a model it cannot run, a refused call.
 * The message names the file, layer, class or setting at fault. `code` is the engine's
 * negative return code (src/tt.h: TT_EINVAL, TT_ENOMEM, TT_EFORMAT, TT_EUNSUP, TT_ESTATE;
 * by name in abi.enums.error) when the C side refused or a model's files were rejected,
 * else undefined.
 */
export class EngineError extends Error {
  constructor(message, code) {
    super(message);
    this.name = 'EngineError';
    this.code = code;
  }
}

const utf8d = new TextDecoder();

/** The NUL-terminated UTF-8 string at p in a wasm memory (shared or not). */
export function cString(memory, p) {
  const u8 = new Uint8Array(memory.buffer);
  let e = p;
  while (u8[e]) e++;
  return utf8d.decode(u8.slice(p, e)); // a copy: browsers do not decode shared memory
}
