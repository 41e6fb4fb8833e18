// Many images at once in "Try it": a sortable table of predictions for a batch, and the
// labelling loop ("inbox"): unlabelled images the model sorts for you, least certain first,
// which one click or key moves into a class's training images. The inbox keeps its
// images in an IndexedDB database of its own ('tinytune-inbox'), so it survives a reload.
// Plain DOM; the app hands in the worker client, its classes and addFiles.

import { el as h } from './dom.mjs';

const NONE = 'None of these';
const pctText = (v) => `${(v * 100).toFixed(1)}%`;

/** The shown answer for a prediction list (best first): its top class, or "None of these". */
export function topOf(preds) {
  const top = preds?.[0];
  if (!top) return null;
  return { label: top.unknown ? NONE : top.label, probability: top.probability, unknown: !!top.unknown };
}

// ---------------------------------------------------------------------------------------
// Batch table

const COLUMNS = [
  { key: 'index', title: '#' },
  { key: 'name', title: 'Image' },
  { key: 'label', title: 'Prediction' },
  { key: 'probability', title: 'Confidence' },
];

export class BatchTable {
  constructor(table) {
    this.table = table;
    this.rows = [];
    this.sort = { key: 'index', dir: 1 };
  }

  clear() {
    for (const r of this.rows) if (r.url) URL.revokeObjectURL(r.url);
    this.rows = [];
    this.render();
  }

  add(row) {
    this.rows.push({ index: this.rows.length + 1, ...row });
    this.render();
  }

  sortBy(key) {
    // confidence sorts high to low first; the rest A to Z
    this.sort = this.sort.key === key ? { key, dir: -this.sort.dir } : { key, dir: key === 'probability' ? -1 : 1 };
    this.render();
  }

  sorted() {
    const { key, dir } = this.sort;
    return [...this.rows].sort((a, b) => {
      const x = a[key] ?? -1,
        y = b[key] ?? -1;
      return (typeof x === 'string' ? x.localeCompare(y, undefined, { numeric: true }) : x - y) * dir || a.index - b.index;
    });
  }

  render() {
    const head = h(
      'tr',
      {},
      ...COLUMNS.map((c) => {
        const on = this.sort.key === c.key;
        return h(
          'th',
          { scope: 'col', 'aria-sort': on ? (this.sort.dir > 0 ? 'ascending' : 'descending') : 'none' },
          h(
            'button',
            { type: 'button', class: 'sort', dataset: { key: c.key }, onclick: () => this.sortBy(c.key) },
            c.title,
            h('span', { 'aria-hidden': 'true', class: 'arrow' }, on ? (this.sort.dir > 0 ? ' ▲' : ' ▼') : ''),
          ),
        );
      }),
    );
    const body = this.sorted().map((r) =>
      h(
        'tr',
        { dataset: { label: r.label ?? '', probability: r.probability ?? '' }, class: r.error ? 'error' : r.unknown ? 'unknown' : '' },
        h('td', { class: 'num' }, String(r.index)),
        h(
          'td',
          { class: 'name' },
          h('div', {}, r.url ? h('img', { src: r.url, alt: '', width: 32, height: 32 }) : null, h('span', { title: r.name }, r.name)),
        ),
        h('td', { class: 'label' }, r.error ? h('span', { class: 'err' }, r.error) : (r.label ?? '…')),
        h(
          'td',
          { class: 'num conf' },
          r.probability == null
            ? ''
            : h('span', { class: 'mini-bar', 'aria-hidden': 'true' }, h('span', { style: `width:${(r.probability * 100).toFixed(0)}%` })),
          r.probability == null ? '' : pctText(r.probability),
        ),
      ),
    );
    this.table.replaceChildren(h('thead', {}, head), h('tbody', {}, ...body));
  }
}

// ---------------------------------------------------------------------------------------
// Inbox storage

const req = (r) =>
  new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });

class InboxStore {
  static async open() {
    if (!globalThis.indexedDB) return new InboxStore(null);
    try {
      const open = indexedDB.open('tinytune-inbox', 1);
      open.onupgradeneeded = () => open.result.createObjectStore('items', { keyPath: 'id' });
      return new InboxStore(await req(open));
    } catch {
      return new InboxStore(null);
    }
  }

  constructor(db) {
    this.db = db;
  }
  store(mode) {
    return this.db.transaction('items', mode).objectStore('items');
  }
  async all() {
    return this.db ? (await req(this.store('readonly').getAll())).sort((a, b) => a.added - b.added) : [];
  }
  put(rec) {
    return this.db ? req(this.store('readwrite').put(rec)) : Promise.resolve();
  }
  delete(id) {
    return this.db ? req(this.store('readwrite').delete(id)) : Promise.resolve();
  }
  clear() {
    return this.db ? req(this.store('readwrite').clear()) : Promise.resolve();
  }
}

// ---------------------------------------------------------------------------------------
// The labelling loop

/**
 * ctx: { predict(blob) -> preds (best first) | throws, classes() -> [{name}], accept(className, File) -> Promise,
 *        notify(text, kind), thumbnail(blob) -> Blob | null, uid() }.
 */
export class Inbox {
  constructor(list, ctx) {
    this.list = list;
    this.ctx = ctx;
    this.items = []; // { id, name, type, blob, thumb, added, url, pred: {label, probability, unknown} | null, error }
    this.store = null;
    this.generation = 0;
    list.addEventListener('keydown', (e) => this._key(e));
  }

  async open() {
    this.store = await InboxStore.open();
    for (const rec of await this.store.all().catch(() => []))
      this.items.push({ ...rec, url: rec.thumb ? URL.createObjectURL(rec.thumb) : null, pred: null });
    this.render();
  }

  async add(files) {
    const base = Date.now();
    for (const [i, f] of files.entries()) {
      const thumb = await this.ctx.thumbnail(f);
      if (!thumb) {
        this.ctx.notify(`Skipped '${f.name}': the browser cannot read it as an image.`, 'warn');
        continue;
      }
      const rec = {
        id: this.ctx.uid(),
        name: f.webkitRelativePath || f.name || `image ${i + 1}`,
        type: f.type,
        blob: f,
        thumb,
        added: base + i,
      };
      await this.store.put(rec).catch((e) => this.ctx.notify(`Could not keep '${rec.name}' in this browser: ${e.message}`, 'warn'));
      this.items.push({ ...rec, url: URL.createObjectURL(thumb), pred: null });
    }
    this.render();
    await this.predictAll(false);
  }

  /** Predicts the items without a prediction (all of them when `all`: a new model). */
  async predictAll(all = true) {
    const gen = ++this.generation;
    if (all)
      for (const it of this.items) {
        it.pred = null;
        it.error = null;
      }
    this.list.dataset.pending = String(this.items.filter((i) => !i.pred).length);
    for (const it of this.items) {
      if (it.pred && !all) continue;
      try {
        it.pred = topOf(await this.ctx.predict(it.blob));
        it.error = null;
      } catch (e) {
        if (/no trained model/.test(e.message)) {
          it.pred = null;
          break;
        }
        it.error = e.message;
        it.pred = { label: null, probability: -1 };
      }
      if (gen !== this.generation) return;
      this.list.dataset.pending = String(this.items.filter((i) => !i.pred).length);
    }
    if (gen !== this.generation) return;
    this.list.dataset.pending = String(this.items.filter((i) => !i.pred).length);
    this.render();
  }

  /** Least certain first; not yet predicted last. */
  ordered() {
    return [...this.items].sort((a, b) => (a.pred ? a.pred.probability : 2) - (b.pred ? b.pred.probability : 2) || a.added - b.added);
  }

  async take(it, className) {
    const file = new File([it.blob], it.name.split('/').pop(), { type: it.type || it.blob.type });
    this._remove(it);
    await this.ctx.accept(className, file);
  }

  discard(it) {
    this._remove(it);
  }

  /** Empties the inbox (the project was cleared). */
  async clear() {
    for (const it of this.items) if (it.url) URL.revokeObjectURL(it.url);
    this.items = [];
    this.generation++;
    await this.store?.clear().catch(() => {});
    this.render();
  }

  _remove(it) {
    const order = this.ordered();
    const at = order.indexOf(it);
    this.items = this.items.filter((x) => x !== it);
    if (it.url) URL.revokeObjectURL(it.url);
    this.store.delete(it.id).catch(() => {});
    this.render();
    const next = this.ordered()[Math.min(at, this.items.length - 1)];
    if (next) this.list.querySelector(`li[data-id="${next.id}"]`)?.focus();
  }

  _key(e) {
    const li = e.target.closest('li[data-id]');
    if (!li || (e.target.tagName === 'BUTTON' && (e.key === 'Enter' || e.key === ' '))) return;
    const it = this.items.find((x) => x.id === li.dataset.id);
    if (!it) return;
    const classes = this.ctx.classes();
    if (e.key === 'Enter' && it.pred?.label && !it.pred.unknown && classes.some((c) => c.name === it.pred.label)) {
      e.preventDefault();
      this.take(it, it.pred.label);
    } else if (/^[1-9]$/.test(e.key) && classes[Number(e.key) - 1]) {
      e.preventDefault();
      this.take(it, classes[Number(e.key) - 1].name);
    } else if (e.key === 'Delete' || e.key === 'Backspace') {
      e.preventDefault();
      this.discard(it);
    } else if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      (e.key === 'ArrowDown' ? li.nextElementSibling : li.previousElementSibling)?.focus();
    }
  }

  render() {
    const classes = this.ctx.classes();
    const lis = this.ordered().map((it) => {
      const p = it.pred;
      const proposal = !p
        ? h('span', { class: 'note' }, 'waiting for a model…')
        : p.label == null
          ? h('span', { class: 'err' }, it.error ?? 'could not be read')
          : h(
              'span',
              { class: 'proposal' },
              p.unknown ? 'Fits none of the classes' : h('span', {}, 'Looks like ', h('strong', {}, p.label)),
              ` · ${pctText(p.probability)}`,
            );
      const buttons = classes.map((c, k) => {
        const proposed = p && !p.unknown && p.label === c.name;
        return h(
          'button',
          {
            type: 'button',
            class: `small${proposed ? ' primary' : ''}`,
            dataset: { class: c.name },
            title: proposed ? 'Accept (Enter)' : `Put it in '${c.name}' (${k + 1})`,
            onclick: () => this.take(it, c.name),
          },
          k < 9 ? h('kbd', {}, String(k + 1)) : null,
          proposed ? `✓ ${c.name}` : c.name,
        );
      });
      return h(
        'li',
        {
          tabindex: 0,
          dataset: { id: it.id, label: p?.label ?? '', probability: p ? String(p.probability) : '' },
          'aria-label': `${it.name}: ${p?.label ? `looks like ${p.label}, ${pctText(p.probability)}` : 'no suggestion yet'}`,
        },
        it.url ? h('img', { src: it.url, alt: '', width: 56, height: 56 }) : null,
        h(
          'div',
          { class: 'inbox-body' },
          h('span', { class: 'inbox-name' }, it.name),
          proposal,
          h(
            'div',
            { class: 'inbox-actions' },
            ...buttons,
            h(
              'button',
              {
                type: 'button',
                class: 'small icon-button',
                title: 'Drop this image (Delete)',
                'aria-label': `Drop ${it.name}`,
                onclick: () => this.discard(it),
              },
              '✕',
            ),
          ),
        ),
      );
    });
    this.list.replaceChildren(...lis);
    this.list.dataset.count = String(this.items.length);
  }
}
