// IndexedDB databases as JSON, for upgrade tests: dumpDb() exports a database of a page's
// origin (its version, stores with key paths and indexes, every record; Blobs and typed
// arrays as base64), replayDb() recreates it exactly, at that version, in another browser
// profile. So a database the page wrote in one release is kept as a small fixture
// (tests/fixtures/idb/) and a later page's upgrade is tested against it.

/** The database `name` of the page's origin, as plain JSON. */
export function dumpDb(page, name) {
  return page.evaluate(async (dbName) => {
    const req = (r) =>
      new Promise((resolve, reject) => {
        r.onsuccess = () => resolve(r.result);
        r.onerror = () => reject(r.error);
      });
    const b64 = (u8) => {
      let s = '';
      for (let i = 0; i < u8.length; i += 0x8000) s += String.fromCharCode(...u8.subarray(i, i + 0x8000));
      return btoa(s);
    };
    const enc = async (v) => {
      if (v instanceof Blob)
        return { $blob: b64(new Uint8Array(await v.arrayBuffer())), type: v.type, ...(v instanceof File ? { name: v.name } : {}) };
      if (ArrayBuffer.isView(v)) return { $typed: v.constructor.name, data: b64(new Uint8Array(v.buffer, v.byteOffset, v.byteLength)) };
      if (Array.isArray(v)) return Promise.all(v.map(enc));
      if (v && typeof v === 'object')
        return Object.fromEntries(await Promise.all(Object.entries(v).map(async ([k, x]) => [k, await enc(x)])));
      return v;
    };
    const db = await req(indexedDB.open(dbName));
    const out = { name: dbName, version: db.version, stores: [] };
    for (const s of db.objectStoreNames) {
      const tx = db.transaction(s, 'readonly');
      const st = tx.objectStore(s);
      const keys = await req(st.getAllKeys()),
        values = await req(st.getAll());
      const indexes = [...st.indexNames].map((i) => {
        const ix = st.index(i);
        return { name: i, keyPath: ix.keyPath, unique: ix.unique, multiEntry: ix.multiEntry };
      });
      out.stores.push({
        name: s,
        keyPath: st.keyPath,
        autoIncrement: st.autoIncrement,
        indexes,
        records: await Promise.all(values.map(async (v, i) => ({ key: st.keyPath === null ? keys[i] : undefined, value: await enc(v) }))),
      });
    }
    db.close();
    return out;
  }, name);
}

/** Recreates a dumped database in the page's origin (it must not exist yet). */
export function replayDb(page, dump) {
  return page.evaluate(async (d) => {
    const req = (r) =>
      new Promise((resolve, reject) => {
        r.onsuccess = () => resolve(r.result);
        r.onerror = () => reject(r.error);
      });
    const bytes = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
    const dec = (v) => {
      if (Array.isArray(v)) return v.map(dec);
      if (v && typeof v === 'object') {
        if ('$blob' in v)
          return v.name !== undefined ? new File([bytes(v.$blob)], v.name, { type: v.type }) : new Blob([bytes(v.$blob)], { type: v.type });
        if ('$typed' in v) {
          const u = bytes(v.data);
          return new globalThis[v.$typed](u.buffer, 0, u.byteLength / globalThis[v.$typed].BYTES_PER_ELEMENT);
        }
        return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, dec(x)]));
      }
      return v;
    };
    const open = indexedDB.open(d.name, d.version);
    open.onupgradeneeded = () => {
      if (open.transaction.db.objectStoreNames.length) throw new Error(`database '${d.name}' exists already`);
      for (const s of d.stores) {
        const st = open.result.createObjectStore(s.name, { keyPath: s.keyPath, autoIncrement: s.autoIncrement });
        for (const ix of s.indexes) st.createIndex(ix.name, ix.keyPath, { unique: ix.unique, multiEntry: ix.multiEntry });
      }
    };
    const db = await req(open);
    const tx = db.transaction([...db.objectStoreNames], 'readwrite');
    for (const s of d.stores) for (const r of s.records) tx.objectStore(s.name).put(dec(r.value), ...(s.keyPath === null ? [r.key] : []));
    await new Promise((resolve, reject) => {
      tx.oncomplete = resolve;
      tx.onerror = () => reject(tx.error);
    });
    db.close();
  }, dump);
}
