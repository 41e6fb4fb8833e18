// Types of the Web Worker client ("tinytune/client", wasm/client.mjs): the engine runs in
// a module worker (wasm/worker.mjs), so training never blocks the page.
import type { Layer, ModelCard, AugmentSettings } from './engine.js';
import type { FitReport, EpochMetrics, BatchProgress, Prediction, Evaluation } from './transfer.js';

/** An error the worker answered with: the engine's name ('EngineError', 'AbortError', ...), message and code. */
export class WorkerError extends Error {
  code?: number | string;
  /** Set on a wrong model base URL: the folder URL that failed. */
  url?: string;
  constructor(error?: { name?: string; message?: string; code?: number | string });
}

/** The worker's events and their data. */
export interface ClientEvents {
  /** Weight download progress of loadModel. */
  loadProgress: { loaded: number; total: number };
  /** train() computing the features of images not yet embedded. */
  prepare: { done: number; total: number };
  batch: BatchProgress & { epochs: number };
  epoch: EpochMetrics & { batchesPerEpoch: number; nTrain: number; nVal: number };
  /** An image's features were computed in the background. */
  embedded: { id: string; pending: number };
  /** An image added turned out unreadable when embedded. */
  skipped: { id: string; name: string; reason: string };
  /** The worker failed to start or crashed; every pending request was rejected with this. */
  fatal: WorkerError;
}

/** Settings of a worker train (and configure). */
export interface WorkerTrainSettings {
  epochs?: number;
  learningRate?: number | null;
  batchSize?: number;
  validationFraction?: number;
  /** The cut layer (name or index). */
  cut?: string | number;
  /** Backbone blocks to train: a number (default 0, the head alone) or 'auto' (a head alone or the last 2 blocks, whichever validates better within the time budget). */
  blocks?: number | 'auto';
  augment?: boolean | AugmentSettings;
  views?: number;
  seed?: number;
}

/** What the worker's loadModel resolves to. */
export interface WorkerModelInfo {
  id: string | null;
  card: ModelCard | null;
  labels: string[] | null;
  inputShape: [number, number, number];
  cut: number;
  cutName: string;
  layers: Layer[];
  /** Backbone blocks before the cut. */
  blocks: number;
  memory: number;
  weightHash: string;
}

/** The worker's requests: arguments and results (see docs/API.md, "Worker protocol"). */
export interface WorkerRequests {
  init: [
    { simd?: boolean; threads?: number; wasmBase?: string },
    { simd: boolean; build: string; threads: number; memory: number; wasm: string },
  ];
  loadModel: [{ url: string; id?: string }, WorkerModelInfo];
  configure: [
    WorkerTrainSettings,
    { cut: number; cutName: string; blocks: number | 'auto'; views: number; augment: boolean | AugmentSettings; pending: number },
  ];
  addImage: [
    { classId: string; bytes: Uint8Array | ArrayBuffer | Blob; id: string; name?: string; trusted?: boolean },
    { ok: true; width?: number; height?: number } | { ok: false; reason: string },
  ];
  removeImage: [{ id: string }, boolean];
  removeClass: [{ classId: string }, number];
  reset: [Record<string, never>, true];
  train: [{ classes: { id: string; name: string }[]; settings?: WorkerTrainSettings }, FitReport];
  cancel: [Record<string, never>, boolean];
  predict: [{ bytes: Uint8Array | ArrayBuffer | Blob; topk?: number }, Prediction[]];
  save: [Record<string, never>, { bytes: Uint8Array; labels: string[]; backbone: string | null }];
  /** The whole model, image to probabilities: tfjs gives model.json, weights.bin and metadata.json; onnx gives model.onnx. */
  export: [{ format?: 'tfjs' | 'onnx' }, { format: 'tfjs' | 'onnx'; labels: string[]; files: Record<string, Uint8Array> }];
  /** Classifier.evaluate on labelled images (a label the model lacks: its error, naming it). */
  evaluate: [{ items: { label: string; name?: string; bytes: Uint8Array | ArrayBuffer | Blob }[] }, Evaluation];
  load: [
    { bytes: Uint8Array | ArrayBuffer | Blob },
    { labels: string[]; report: FitReport | null; meta: Record<string, unknown>; backbone: string | null },
  ];
  status: [Record<string, never>, { images: number; pending: number; trained: boolean; model: string | null }];
}

/** The worker's raw protocol: one promise per request, listeners for events. */
export class EngineClient {
  /** Starts the worker at `url` (default: wasm/worker.mjs beside this module). */
  constructor(url?: string | URL);
  readonly worker: Worker;
  /** Calls fn(data) on each event `name`; returns a function that removes it. */
  on<K extends keyof ClientEvents>(name: K, fn: (data: ClientEvents[K]) => void): () => void;
  /**
   * Sends request `type`; resolves with its result, rejects with a WorkerError carrying the
   * worker's message (or the start failure, once the worker has failed).
   */
  call<K extends keyof WorkerRequests>(type: K, args?: WorkerRequests[K][0], transfer?: Transferable[]): Promise<WorkerRequests[K][1]>;
  /** Stops the worker; pending requests never settle. */
  terminate(): void;
}

/** Options of new TinytuneClient. */
export interface TinytuneClientOptions {
  /** The worker script (default: worker.mjs beside client.mjs; a bundle passes its bundled worker). */
  worker?: string | URL;
  /** The folder of the tinytune*.wasm files (default: ../build/ beside the worker's engine). */
  wasmBase?: string | URL;
  simd?: boolean;
  threads?: number;
}

/** One method per request, class names as class ids. */
export class TinytuneClient extends EngineClient {
  /** Starts the worker and its engine (`ready` settles when the engine is loaded). */
  constructor(opts?: TinytuneClientOptions);
  /** The engine's build; rejects with a WorkerError naming the .wasm URLs tried when none loads. */
  readonly ready: Promise<{ simd: boolean; build: string; threads: number; memory: number; wasm: string }>;
  /** Class names in the order their first image was added. */
  classes: string[];
  /**
   * Loads model `id` (default 'mobilenet_v2_mid') from `baseUrl`, the folder holding
   * <id>/model.json (relative URLs resolve against the page). Rejects with a WorkerError
   * naming the base URL and the file that failed when it is wrong.
   */
  loadModel(baseUrl: string | URL, id?: string): Promise<WorkerModelInfo>;
  /**
   * Adds an image to class `label`. Resolves { ok: false, reason } for bytes that are not
   * an image; rejects if the engine failed to start.
   */
  addImage(
    label: string,
    image: Uint8Array | ArrayBuffer | Blob,
    opts?: { id?: string; name?: string },
  ): Promise<({ ok: true; width?: number; height?: number } | { ok: false; reason: string }) & { id: string }>;
  /** Forgets one image (by the id addImage resolved with). */
  removeImage(id: string): Promise<boolean>;
  /** Forgets a class and its images; resolves to how many images went. */
  removeClass(label: string): Promise<number>;
  /**
   * Trains on `classes` (default: every class with images). Rejects with a WorkerError when
   * no model is loaded, there are fewer than 2 classes, a class has no images, or on
   * cancel() before training started (name 'AbortError'); a cancel during training resolves
   * with `cancelled: true`.
   */
  train(settings?: WorkerTrainSettings, classes?: string[]): Promise<FitReport>;
  /** Stops a running train; resolves true if one was running. */
  cancel(): Promise<boolean>;
  /** Class probabilities, best first. Rejects when nothing is trained or the image is unreadable. */
  predict(image: Uint8Array | ArrayBuffer | Blob, topk?: number): Promise<Prediction[]>;
  /** The trained classifier as .ttm bytes. Rejects when nothing is trained. */
  save(): Promise<{ bytes: Uint8Array; labels: string[]; backbone: string | null }>;
  /** Loads a .ttm file. Rejects for a bad file or one made on another backbone. */
  load(
    bytes: Uint8Array | ArrayBuffer | Blob,
  ): Promise<{ labels: string[]; report: FitReport | null; meta: Record<string, unknown>; backbone: string | null }>;
  /** Drops every image and the classifier. */
  reset(): Promise<true>;
  /** Counts of images and pending embeddings, and whether a classifier is trained. */
  status(): Promise<{ images: number; pending: number; trained: boolean; model: string | null }>;
}
