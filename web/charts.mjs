// Training charts on a canvas (loss and accuracy per epoch, train and validation) and the
// result tables (per-class accuracy, confusion matrix), drawn with plain DOM and 2D canvas.

const COLORS = { train: '#2563eb', val: '#db2777', grid: '#e5e7eb', axis: '#6b7280', text: '#374151' };

function setupCanvas(canvas) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || canvas.width,
    h = canvas.clientHeight || canvas.height;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  return { ctx, w, h };
}

function panel(ctx, x, y, w, h, title, series, { epochs, yMax, percent }) {
  const L = 34,
    B = 18,
    T = 18;
  const px = x + L,
    py = y + T,
    pw = w - L - 6,
    ph = h - T - B;
  ctx.font = '600 11px system-ui, sans-serif';
  ctx.fillStyle = COLORS.text;
  ctx.textAlign = 'left';
  ctx.fillText(title, x + 2, y + 11);
  ctx.font = '10px system-ui, sans-serif';
  ctx.strokeStyle = COLORS.grid;
  ctx.lineWidth = 1;
  ctx.fillStyle = COLORS.axis;
  ctx.textAlign = 'right';
  for (let i = 0; i <= 4; i++) {
    const v = (yMax * i) / 4,
      yy = py + ph - (ph * i) / 4;
    ctx.beginPath();
    ctx.moveTo(px, Math.round(yy) + 0.5);
    ctx.lineTo(px + pw, Math.round(yy) + 0.5);
    ctx.stroke();
    ctx.fillText(percent ? `${Math.round(v * 100)}%` : String(+v.toFixed(3)), px - 4, yy + 3);
  }
  ctx.textAlign = 'center';
  ctx.fillText('epoch', px + pw / 2, py + ph + 14);
  ctx.textAlign = 'left';
  ctx.fillText('1', px, py + ph + 14);
  ctx.textAlign = 'right';
  ctx.fillText(String(epochs), px + pw, py + ph + 14);
  const X = (i) => px + (epochs <= 1 ? pw / 2 : (pw * i) / (epochs - 1));
  const Y = (v) => py + ph - ph * Math.max(0, Math.min(1, v / yMax));
  for (const s of series) {
    const pts = s.values.map((v, i) => [i, v]).filter(([, v]) => Number.isFinite(v));
    if (!pts.length) continue;
    ctx.strokeStyle = s.color;
    ctx.fillStyle = s.color;
    ctx.lineWidth = 2;
    ctx.setLineDash(s.dash ?? []);
    ctx.beginPath();
    pts.forEach(([i, v], k) => (k ? ctx.lineTo(X(i), Y(v)) : ctx.moveTo(X(i), Y(v))));
    ctx.stroke();
    ctx.setLineDash([]);
    if (pts.length === 1) {
      ctx.beginPath();
      ctx.arc(X(pts[0][0]), Y(pts[0][1]), 2.5, 0, Math.PI * 2);
      ctx.fill();
    }
  }
}

/** Loss and accuracy curves for a history [{trainLoss, valLoss, trainAccuracy, valAccuracy}]. */
export function drawCurves(canvas, history, epochs) {
  const { ctx, w, h } = setupCanvas(canvas);
  // the page's colour scheme (light or dark) sets the chart's ink
  const css = getComputedStyle(canvas);
  for (const k of ['grid', 'axis', 'text']) COLORS[k] = css.getPropertyValue(`--chart-${k}`).trim() || COLORS[k];
  const n = Math.max(epochs || 0, history.length, 2);
  const losses = history.flatMap((e) => [e.trainLoss, e.valLoss]).filter(Number.isFinite);
  const top = Math.max(0, ...losses);
  const yMax = [0.5, 1, 2, 4, 8, 16].find((v) => v >= top) ?? Math.ceil(top);
  const half = (w - 12) / 2;
  panel(
    ctx,
    0,
    0,
    half,
    h,
    'Loss',
    [
      { values: history.map((e) => e.trainLoss), color: COLORS.train },
      { values: history.map((e) => e.valLoss), color: COLORS.val, dash: [5, 3] },
    ],
    { epochs: n, yMax },
  );
  panel(
    ctx,
    half + 12,
    0,
    half,
    h,
    'Accuracy',
    [
      { values: history.map((e) => e.trainAccuracy), color: COLORS.train },
      { values: history.map((e) => e.valAccuracy), color: COLORS.val, dash: [5, 3] },
    ],
    { epochs: n, yMax: 1, percent: true },
  );
}

const pct = (v) => (v === null || v === undefined || !Number.isFinite(v) ? '–' : `${Math.round(v * 100)}%`);

/** Per-class accuracy bars into a container. */
export function renderPerClass(el, labels, perClass) {
  el.replaceChildren(
    ...labels.map((label, k) => {
      const row = document.createElement('div');
      row.className = 'bar-row';
      const name = document.createElement('span');
      name.className = 'bar-label';
      name.textContent = label;
      const bar = document.createElement('span');
      bar.className = 'bar';
      bar.setAttribute('role', 'img');
      bar.setAttribute('aria-label', `${label}: ${pct(perClass[k])} of validation images right`);
      const fill = document.createElement('span');
      fill.className = 'bar-fill';
      fill.style.width = `${Math.round((perClass[k] ?? 0) * 100)}%`;
      bar.append(fill);
      const val = document.createElement('span');
      val.className = 'bar-value';
      val.textContent = pct(perClass[k]);
      row.append(name, bar, val);
      return row;
    }),
  );
}

/** A confusion matrix as a table: rows are true classes, columns predicted ones. */
export function renderConfusion(table, labels, matrix) {
  const cap = document.createElement('caption');
  cap.className = 'visually-hidden';
  cap.textContent = 'Confusion matrix on the validation images: rows are the true class, columns the prediction';
  const head = document.createElement('tr');
  const corner = document.createElement('th');
  corner.textContent = 'true \\ predicted';
  corner.className = 'corner';
  head.append(
    corner,
    ...labels.map((l) => {
      const th = document.createElement('th');
      th.scope = 'col';
      th.textContent = l;
      return th;
    }),
  );
  const rows = matrix.map((row, r) => {
    const tr = document.createElement('tr');
    const th = document.createElement('th');
    th.scope = 'row';
    th.textContent = labels[r];
    tr.append(th);
    const total = row.reduce((a, b) => a + b, 0) || 1;
    row.forEach((v, c) => {
      const td = document.createElement('td');
      td.textContent = String(v);
      const f = v / total;
      td.style.background = r === c ? `rgba(22, 163, 74, ${0.12 + 0.6 * f})` : v ? `rgba(220, 38, 38, ${0.12 + 0.6 * f})` : '';
      if (f > 0.55) td.style.color = '#fff';
      tr.append(td);
    });
    return tr;
  });
  const thead = document.createElement('thead');
  thead.append(head);
  const tbody = document.createElement('tbody');
  tbody.append(...rows);
  table.replaceChildren(cap, thead, tbody);
}

/** Top predictions as probability bars; the engine's "fits none of the classes" answer (unknown: true) as "None of these". */
export function renderPredictions(el, preds) {
  el.replaceChildren(
    ...preds.map((p, i) => {
      const row = document.createElement('div');
      row.className = `bar-row prediction${i === 0 ? ' top' : ''}${p.unknown ? ' unknown' : ''}`;
      const name = document.createElement('span');
      name.className = 'bar-label';
      name.textContent = p.unknown ? 'None of these' : p.label;
      const bar = document.createElement('span');
      bar.className = 'bar';
      bar.setAttribute('role', 'img');
      bar.setAttribute('aria-label', `${name.textContent}: ${(p.probability * 100).toFixed(1)}%`);
      const fill = document.createElement('span');
      fill.className = 'bar-fill';
      fill.style.width = `${(p.probability * 100).toFixed(1)}%`;
      bar.append(fill);
      const val = document.createElement('span');
      val.className = 'bar-value';
      val.textContent = `${(p.probability * 100).toFixed(1)}%`;
      row.append(name, bar, val);
      return row;
    }),
  );
}
