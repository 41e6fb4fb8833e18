// The page's webcam: live prediction in "Try it" (a bar per class, refreshed as fast as the
// worker answers) and hold-to-record capture into a class. Frames leave the <video> as
// 224x224 RGBA pixels for prediction (the engine resizes whole images to 224x224 anyway,
// so this is what a captured photo of the same scene gives) and as JPEG files for capture.
// Plain DOM; the app hands in what it owns (the worker client, notify, addFiles).

/** A sentence for a getUserMedia failure that says what to do; the rest of the page works without a camera. */
export function cameraError(e) {
  const n = e?.name ?? '';
  if (n === 'NotAllowedError' || n === 'SecurityError') {
    return "The webcam is blocked for this page. Allow the camera in the browser's site settings (the camera icon in the address bar) and try again. Everything else works without it: add photos from files instead.";
  }
  if (n === 'NotFoundError' || n === 'OverconstrainedError' || n === 'NoCamera') {
    return 'No webcam was found. Connect one and try again, or add photos from files instead.';
  }
  if (n === 'NotReadableError' || n === 'AbortError') {
    return 'The webcam could not be started: another program may be using it. Close it and try again.';
  }
  return `The webcam could not be opened (${e?.message ?? n}). Add photos from files instead.`;
}

export async function openStream() {
  if (!navigator.mediaDevices?.getUserMedia) {
    const e = new Error('this browser gives pages no camera access');
    e.name = 'NoCamera';
    throw e;
  }
  return navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
}

const SIDE = 224;

/** The current video frame as {width, height, data} RGBA pixels, squeezed to 224x224 like the engine's resize. */
export function framePixels(video, canvas) {
  canvas.width = SIDE;
  canvas.height = SIDE;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(video, 0, 0, SIDE, SIDE);
  const { data } = ctx.getImageData(0, 0, SIDE, SIDE);
  return { width: SIDE, height: SIDE, data };
}

/**
 * Live prediction: while on, one frame is in flight at a time, so the rate is what the
 * worker manages (and the page never queues frames it cannot use). Bars keep the class
 * order of the model, so they do not jump around; the top one is marked.
 */
export class LivePreview {
  constructor({ client, video, bars, rate, button, notify, labels }) {
    Object.assign(this, { client, video, bars, rate, button, notify, labels });
    this.canvas = document.createElement('canvas');
    this.stream = null;
    this.on = false;
    this.stats = { frames: 0, t0: 0, ms: [] };
    this.rows = [];
    this.generation = 0;
  }

  async start() {
    if (this.on) return;
    try {
      this.stream = await openStream();
    } catch (e) {
      this.notify(cameraError(e), 'error', { topic: 'camera' });
      return;
    }
    this.on = true;
    this.video.srcObject = this.stream;
    this.video.closest('.live').hidden = false;
    this.button.setAttribute('aria-pressed', 'true');
    this.button.textContent = 'Stop webcam';
    this.stats = { frames: 0, t0: performance.now(), ms: [] };
    document.body.dataset.live = 'true';
    this._loop(++this.generation);
  }

  stop() {
    this.on = false;
    this.generation++; // a loop still awaiting its last answer ends there
    this.stream?.getTracks().forEach((t) => t.stop());
    this.stream = null;
    this.video.srcObject = null;
    this.video.closest('.live').hidden = true;
    this.button.setAttribute('aria-pressed', 'false');
    this.button.textContent = 'Webcam: predict live';
    this.rate.textContent = '';
    document.body.dataset.live = 'false';
  }

  toggle() {
    if (this.on) this.stop();
    else this.start();
  }

  _buildRows(labels) {
    this.rows = labels.map((label) => {
      const fill = Object.assign(document.createElement('span'), { className: 'bar-fill' });
      const bar = Object.assign(document.createElement('span'), { className: 'bar' });
      bar.append(fill);
      const name = Object.assign(document.createElement('span'), { className: 'bar-label', textContent: label });
      const val = Object.assign(document.createElement('span'), { className: 'bar-value' });
      const row = Object.assign(document.createElement('div'), { className: 'bar-row prediction' });
      row.dataset.label = label;
      row.append(name, bar, val);
      return { row, fill, val, label };
    });
    this.bars.replaceChildren(...this.rows.map((r) => r.row));
  }

  _show(preds) {
    const labels = this.labels();
    const none = preds.find((p) => p.unknown);
    const want = none ? [...labels, 'None of these'] : labels;
    if (this.rows.length !== want.length || this.rows.some((r, i) => r.label !== want[i])) this._buildRows(want);
    const byLabel = new Map(preds.map((p) => [p.unknown ? 'None of these' : p.label, p.probability]));
    const top = preds.reduce((a, b) => (b.probability > a.probability ? b : a), preds[0]);
    const topLabel = top?.unknown ? 'None of these' : top?.label;
    for (const r of this.rows) {
      const v = byLabel.get(r.label) ?? 0;
      r.fill.style.width = `${(v * 100).toFixed(1)}%`;
      r.val.textContent = `${Math.round(v * 100)}%`;
      r.row.classList.toggle('top', r.label === topLabel);
    }
    this.bars.dataset.top = topLabel ?? '';
  }

  /**
   * The predict request for the current frame. Where the browser can, the frame goes to the
   * worker as a 224x224 ImageBitmap (scaled off the main thread, read back in the worker),
   * so the page's own work per frame stays near nothing; else as pixels read here.
   */
  async _frame() {
    if (this.bitmaps !== false && typeof createImageBitmap === 'function' && typeof OffscreenCanvas === 'function') {
      try {
        const bitmap = await createImageBitmap(this.video, { resizeWidth: SIDE, resizeHeight: SIDE, resizeQuality: 'medium' });
        return ['predict', { bitmap, topk: 1000 }, [bitmap]];
      } catch {
        if (this.video.readyState >= 2) this.bitmaps = false; // this browser cannot: pixels from now on
      }
    }
    const px = framePixels(this.video, this.canvas);
    return ['predict', { pixels: px, topk: 1000 }, [px.data.buffer]];
  }

  async _loop(gen) {
    const mine = () => this.on && this.generation === gen;
    while (mine()) {
      if (this.video.readyState < 2 || !this.video.videoWidth) {
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      if (document.body.dataset.training === 'true') {
        // the worker trains one thing at a time: frames would only queue up behind it
        this.rate.textContent = 'Paused while training…';
        await new Promise((r) => setTimeout(r, 250));
        this.stats = { frames: 0, t0: performance.now(), ms: [] };
        continue;
      }
      const t = performance.now();
      let preds;
      try {
        preds = await this.client.call(...(await this._frame()));
      } catch (e) {
        if (!mine()) return;
        this.notify(`Live prediction stopped: ${e.message}`, 'error', { topic: 'camera' });
        this.stop();
        return;
      }
      if (!mine()) return;
      const s = this.stats;
      s.frames++;
      s.ms.push(performance.now() - t);
      if (s.ms.length > 60) s.ms.shift();
      this._show(preds);
      const secs = (performance.now() - s.t0) / 1000;
      if (secs > 1) this.rate.textContent = `${(s.frames / secs).toFixed(0)} predictions a second`;
      // give the page a frame to paint between predictions when the worker is very fast
      await new Promise((r) => requestAnimationFrame(() => r()));
    }
  }
}

/**
 * Hold-to-record: frames are grabbed every 1/fps seconds while the button is held (mouse,
 * touch, or Space/Enter on the focused button); a click takes one. Each frame becomes a
 * JPEG file handed to onFrames in small groups.
 */
export class Recorder {
  constructor({ video, button, fps, onFrame }) {
    Object.assign(this, { video, button, fps, onFrame });
    this.timer = null;
    this.canvas = document.createElement('canvas');
    const start = (e) => {
      e.preventDefault();
      this.start();
    };
    const stop = () => this.stop();
    button.addEventListener('pointerdown', (e) => {
      if (e.button === 0) {
        button.setPointerCapture?.(e.pointerId);
        start(e);
      }
    });
    button.addEventListener('pointerup', stop);
    button.addEventListener('pointercancel', stop);
    button.addEventListener('lostpointercapture', stop);
    button.addEventListener('keydown', (e) => {
      if ((e.key === ' ' || e.key === 'Enter') && !e.repeat) start(e);
      else if (e.key === ' ' || e.key === 'Enter') e.preventDefault();
    });
    button.addEventListener('keyup', (e) => {
      if (e.key === ' ' || e.key === 'Enter') stop();
    });
    button.addEventListener('blur', stop);
    button.addEventListener('click', (e) => e.preventDefault());
  }

  get recording() {
    return this.timer !== null;
  }

  start() {
    if (this.timer !== null) return;
    this.button.classList.add('recording');
    this.button.textContent = 'Recording…';
    this.grab();
    const every = 1000 / Math.max(1, Number(this.fps()) || 10);
    this.timer = setInterval(() => this.grab(), every);
  }

  stop() {
    if (this.timer === null) return;
    clearInterval(this.timer);
    this.timer = null;
    this.button.classList.remove('recording');
    this.button.textContent = 'Hold to record';
  }

  grab() {
    const v = this.video;
    if (!v.videoWidth) return;
    const c = this.canvas;
    c.width = v.videoWidth;
    c.height = v.videoHeight;
    c.getContext('2d').drawImage(v, 0, 0);
    const name = `webcam-${new Date().toISOString().replace(/[:.]/g, '-')}.jpg`;
    // toBlob copies the canvas now, so the next grab can draw over it at once
    this.onFrame(new Promise((r) => c.toBlob((b) => r(b ? new File([b], name, { type: 'image/jpeg' }) : null), 'image/jpeg', 0.9)));
  }
}
