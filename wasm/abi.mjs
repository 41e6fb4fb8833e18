// The C/JS interface as the loaded module declares it (src/abi.h, read through tt_abi()
// once per module): the C value behind each enum name (op types, activations, weight
// encodings, optimizers, error codes) and where each member of the C structs that cross
// the boundary lives. JS reads and writes those structs in linear memory by member name;
// a name the module does not declare is an error naming the struct and what it has, so
// neither side can change a field without the other noticing (tests/abi.test.mjs).
import { EngineError, cString } from './errors.mjs';

export class Abi {
  /** desc: tt_abi()'s JSON ({enums, structs}; see src/abi.c). */
  constructor(desc) {
    if (!desc?.enums || !desc?.structs) throw new EngineError('the engine module describes no interface (tt_abi)');
    this.enums = desc.enums;
    this.structs = desc.structs;
    this._names = {};
  }

  /** The interface of an instantiated module (its exports and memory). */
  static read(x, memory) {
    if (typeof x.tt_abi !== 'function') throw new EngineError('this engine build has no tt_abi export: rebuild it (make wasm)');
    return new Abi(JSON.parse(cString(memory, x.tt_abi())));
  }

  /** The C value of enum `kind`'s member `name` (e.g. value('op', 'conv2d')); throws naming the choices. */
  value(kind, name) {
    const v = this.enums[kind]?.[name];
    if (v === undefined)
      throw new EngineError(`the engine has no ${kind} '${name}' (it has ${Object.keys(this.enums[kind] ?? {}).join(', ')})`);
    return v;
  }

  /** The name of enum `kind`'s value v, or undefined. */
  name(kind, v) {
    this._names[kind] ??= new Map(Object.entries(this.enums[kind] ?? {}).map(([k, x]) => [x, k]));
    return this._names[kind].get(v);
  }

  has(kind, name) {
    return this.enums[kind]?.[name] !== undefined;
  }

  /** Bytes of struct `name` (sizeof). */
  size(name) {
    return this._struct(name).size;
  }

  _struct(name) {
    const s = this.structs[name];
    if (!s) throw new EngineError(`the engine declares no struct '${name}'`);
    return s;
  }

  _member(name, m) {
    const mm = this._struct(name).members[m];
    if (!mm)
      throw new EngineError(`the engine's ${name} has no member '${m}' (it has ${Object.keys(this._struct(name).members).join(', ')})`);
    return mm;
  }

  /** Writes the members named in `values` into struct `name` at p; others stay as they are. */
  write(memory, name, p, values) {
    const dv = new DataView(memory.buffer);
    for (const [m, v] of Object.entries(values)) {
      const [off, kind] = this._member(name, m),
        at = p + off;
      if (this.structs[kind]) {
        this.write(memory, kind, at, v);
        continue;
      }
      if (v != null && typeof v !== 'number' && typeof v !== 'boolean') throw new EngineError(`${name}.${m} must be a number, got ${v}`);
      const x = Number(v ?? 0);
      if (kind === 'i32') dv.setInt32(at, x, true);
      else if (kind === 'f32') dv.setFloat32(at, x, true);
      else if (kind === 'u64') dv.setBigUint64(at, BigInt.asUintN(64, BigInt(Math.floor(Number.isFinite(x) ? x : 0))), true);
      else if (kind === 'ptr' || kind === 'bytes' || kind === 'size') dv.setUint32(at, x, true);
      else throw new EngineError(`${name}.${m} (${kind}) cannot be written from JS`);
    }
  }

  /**
   * Struct `name` at p as an object of its members (a copy). Reading a member the struct
   * does not have throws, like writing one.
   */
  read(memory, name, p) {
    return strict(name, this._read(memory, name, p));
  }

  _read(memory, name, p) {
    const dv = new DataView(memory.buffer),
      out = {};
    for (const [m, [off, kind, bytes]] of Object.entries(this._struct(name).members)) {
      const at = p + off;
      if (this.structs[kind]) out[m] = this.read(memory, kind, at);
      else if (kind === 'i32') out[m] = dv.getInt32(at, true);
      else if (kind === 'f32') out[m] = dv.getFloat32(at, true);
      else if (kind === 'u64') out[m] = Number(dv.getBigUint64(at, true));
      else if (kind === 'chars') out[m] = cString(memory, at).slice(0, bytes);
      else out[m] = dv.getUint32(at, true); // ptr, bytes, size: 32-bit in wasm32
    }
    return out;
  }
}

function strict(name, obj) {
  return new Proxy(obj, {
    get(o, k) {
      if (typeof k === 'string' && !(k in o) && k !== 'then' && k !== 'toJSON') {
        throw new EngineError(`the engine's ${name} has no member '${k}' (it has ${Object.keys(o).join(', ')})`);
      }
      return o[k];
    },
  });
}
