// Post-link rewrite for the relaxed-SIMD build: emcc 3.1.6 (clang 14) only has the
// pre-standard relaxed-SIMD FMA, `f32x4.fma` (0xfd 0xaf 0x01, a + b*c), which current
// engines reject; the standard `f32x4.relaxed_madd` (0xfd 0x85 0x02, a*b + c) has an
// encoding of the same length. The kernels call the old builtin as TT_MADD(a, b, c) with
// the operands in relaxed_madd's order (src/kernels/simd.h), so replacing the opcode is
// the whole rewrite, and the result computes a*b + c.
//
// Opcode bytes can also occur inside immediates and data, so every function body is
// decoded instruction by instruction and only real instruction opcodes are replaced.
// Anything the decoder does not know, and any other pre-standard relaxed opcode, is an
// error rather than a guess.
//   node tools/relaxed_fma.mjs in.wasm out.wasm
import fs from 'node:fs';

const OLD_FMA = 0xaf,
  NEW_MADD = 0x105;
// Pre-standard relaxed-SIMD opcodes (all in gaps of the final SIMD opcode space).
const OLD_RELAXED = new Set([0xa2, 0xa5, 0xa6, 0xb0, 0xb2, 0xb3, 0xb4, 0xc5, 0xc6, 0xcf, 0xd0, 0xd2, 0xd3, 0xd4, 0xe2, 0xee]);

export function rewrite(bytes) {
  const b = Uint8Array.from(bytes);
  let p = 0;
  const fail = (msg) => {
    throw new Error(`relaxed_fma: ${msg} at byte ${p}`);
  };
  const u32 = () => {
    let r = 0,
      s = 0,
      x;
    do {
      x = b[p++];
      r |= (x & 0x7f) << s;
      s += 7;
    } while (x & 0x80 && s < 35);
    return r >>> 0;
  };
  const sleb = (max) => {
    let s = 0,
      x;
    do {
      x = b[p++];
      s += 7;
      if (s > max + 7) fail('LEB too long');
    } while (x & 0x80);
  };
  const memarg = () => {
    u32();
    u32();
  };
  if (b[0] !== 0 || b[1] !== 0x61 || b[2] !== 0x73 || b[3] !== 0x6d) fail('not a wasm module');
  p = 8;
  let rewritten = 0;
  while (p < b.length) {
    const id = b[p++],
      size = u32(),
      end = p + size;
    if (id !== 10) {
      p = end;
      continue;
    }
    const nfuncs = u32();
    for (let f = 0; f < nfuncs; f++) {
      const bodySize = u32(),
        bodyEnd = p + bodySize;
      const ngroups = u32();
      for (let g = 0; g < ngroups; g++) {
        u32();
        p++;
      }
      while (p < bodyEnd) {
        const op = b[p++];
        if (op === 0x02 || op === 0x03 || op === 0x04) {
          // block type: empty, a value type, or a type index
          if (b[p] === 0x40 || (b[p] >= 0x6f && b[p] <= 0x7f)) p++;
          else sleb(33);
        } else if (op === 0x0c || op === 0x0d || op === 0x10 || op === 0x12 || (op >= 0x20 && op <= 0x26) || op === 0xd2) u32();
        else if (op === 0x0e) {
          const n = u32();
          for (let i = 0; i <= n; i++) u32();
        } else if (op === 0x11 || op === 0x13) {
          u32();
          u32();
        } else if (op === 0x1c) {
          const n = u32();
          p += n;
        } else if (op >= 0x28 && op <= 0x3e) memarg();
        else if (op === 0x3f || op === 0x40 || op === 0xd0) p++;
        else if (op === 0x41) sleb(32);
        else if (op === 0x42) sleb(64);
        else if (op === 0x43) p += 4;
        else if (op === 0x44) p += 8;
        else if (
          op <= 0x01 ||
          op === 0x05 ||
          op === 0x0b ||
          op === 0x0f ||
          op === 0x1a ||
          op === 0x1b ||
          (op >= 0x45 && op <= 0xc4) ||
          op === 0xd1
        ) {
          /* no immediates */
        } else if (op === 0xfc) {
          const sub = u32();
          if (sub <= 7) {
            /* saturating truncations */
          } else if (sub === 8) {
            u32();
            p++;
          } else if (sub === 9 || sub === 13 || (sub >= 15 && sub <= 17)) u32();
          else if (sub === 10) p += 2;
          else if (sub === 11) p++;
          else if (sub === 12 || sub === 14) {
            u32();
            u32();
          } else fail(`unknown 0xfc ${sub}`);
        } else if (op === 0xfe) {
          // threads: atomic.fence has a zero byte, the rest a memarg
          const sub = u32();
          if (sub === 3) p++;
          else if (sub <= 2 || (sub >= 0x10 && sub <= 0x4e)) memarg();
          else fail(`unknown 0xfe ${sub}`);
        } else if (op === 0xfd) {
          const at = p,
            sub = u32();
          if (sub <= 11 || sub === 92 || sub === 93) memarg();
          else if (sub === 12 || sub === 13) p += 16;
          else if (sub >= 21 && sub <= 34) p++;
          else if (sub >= 84 && sub <= 91) {
            memarg();
            p++;
          } else if (sub === OLD_FMA) {
            if (p - at !== 2) fail('non-minimal f32x4.fma encoding');
            b[at] = 0x80 | (NEW_MADD & 0x7f);
            b[at + 1] = NEW_MADD >> 7;
            rewritten++;
          } else if (OLD_RELAXED.has(sub)) fail(`pre-standard relaxed-SIMD opcode 0x${sub.toString(16)} has no rewrite`);
          else if (sub > 0xff && !(sub >= 0x100 && sub <= 0x113)) fail(`unknown SIMD opcode 0x${sub.toString(16)}`);
        } else fail(`unknown opcode 0x${op.toString(16)}`);
      }
      if (p !== bodyEnd) fail(`function ${f} decoded past its end`);
    }
    if (p !== end) fail('code section size mismatch');
  }
  return { bytes: b, rewritten };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [inPath, outPath] = process.argv.slice(2);
  const { bytes, rewritten } = rewrite(fs.readFileSync(inPath));
  if (!rewritten) throw new Error(`relaxed_fma: no f32x4.fma in ${inPath}: was it built with -mrelaxed-simd?`);
  fs.writeFileSync(outPath, bytes);
  console.log(`relaxed_fma: ${rewritten} f32x4.fma -> f32x4.relaxed_madd, wrote ${outPath}`);
}
