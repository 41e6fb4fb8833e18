// A minimal ZIP writer for the page's downloads (the whole-model export: model.json,
// weights.bin, metadata.json): files stored, not compressed (the weights are float32 and
// barely compress, and any unzip reads "stored"), with the CRC-32 the format requires.

const CRC = new Uint32Array(256).map((_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c;
});

/** CRC-32 (ISO-HDLC, as ZIP and PNG use) of a byte array. */
export function crc32(bytes) {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC[(c ^ bytes[i]) & 255] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/**
 * A store-only zip of { name: Uint8Array }, in insertion order, as one Uint8Array.
 * Names are UTF-8 (flag bit 11); no ZIP64, so the whole archive must stay under 4 GB.
 */
export function zip(files) {
  const enc = new TextEncoder();
  const entries = Object.entries(files).map(([name, data]) => ({ name: enc.encode(name), data, crc: crc32(data), offset: 0 }));
  const size = entries.reduce((a, e) => a + 30 + e.name.length + e.data.length + 46 + e.name.length, 22);
  if (size > 0xffffffff) throw new Error(`the export is ${size} bytes, more than a zip without ZIP64 holds`);
  const out = new Uint8Array(size);
  const v = new DataView(out.buffer);
  let at = 0;
  const u16 = (x) => {
    v.setUint16(at, x, true);
    at += 2;
  };
  const u32 = (x) => {
    v.setUint32(at, x, true);
    at += 4;
  };
  // version 2.0, UTF-8 names, stored, time 00:00 and date 1980-01-01 (a fixed stamp keeps exports reproducible)
  const common = (e) => {
    u16(20);
    u16(0x0800);
    u16(0);
    u16(0);
    u16(0x21);
    u32(e.crc);
    u32(e.data.length);
    u32(e.data.length);
    u16(e.name.length);
    u16(0);
  };
  for (const e of entries) {
    e.offset = at;
    u32(0x04034b50);
    common(e);
    out.set(e.name, at);
    at += e.name.length;
    out.set(e.data, at);
    at += e.data.length;
  }
  const dir = at;
  for (const e of entries) {
    u32(0x02014b50);
    u16(0x0314); // made by Unix, 2.0: unzip then takes the names as they are (from an MS-DOS host it would recode them)
    common(e);
    u16(0);
    u16(0);
    u16(0);
    u32(0o100644 * 0x10000); // comment length, disk, internal attributes; external: a regular file, rw-r--r--
    u32(e.offset);
    out.set(e.name, at);
    at += e.name.length;
  }
  const dirSize = at - dir;
  u32(0x06054b50);
  u16(0);
  u16(0);
  u16(entries.length);
  u16(entries.length);
  u32(dirSize);
  u32(dir);
  u16(0);
  return out;
}
