// Types of the engine API (wasm/engine.mjs, wasm/module.mjs): load the WebAssembly engine,
// load a TensorFlow.js model into it, embed and classify images.

/**
 * The error every engine call throws for bad input or a failed load: its message names the
 * problem (the file, URL, layer, class or setting at fault). `code` is the engine's negative
 * return code (src/tt.h; by name in the module's `abi.enums.error`) when the C side refused
 * or a model's files were rejected (TT_EFORMAT, -3, when the engine gave no other), else
 * undefined.
 */
export class EngineError extends Error {
  name: 'EngineError';
  code?: number | string;
  /** Set on a wrong model base URL: the folder URL that failed. */
  url?: string;
  /** Set by Classifier.fit when training diverged: the report of the best weights kept. */
  report?: import('./transfer.js').FitReport;
  /** True when a .wasm build file is missing from a Node install. */
  missing?: boolean;
  constructor(message: string, code?: number | string);
}

/**
 * An image: encoded file bytes (PNG, JPEG, BMP, ...) or raw 8-bit pixels such as a canvas
 * ImageData (RGBA) or {width, height, data, channels: 3}.
 */
export type ImageInput =
  Uint8Array | ArrayBuffer | { width: number; height: number; data: Uint8Array | Uint8ClampedArray; channels?: number };

/** Options of createEngine. */
export interface EngineOptions {
  /** Force the SIMD build (true) or the scalar one (false). Default: detect. */
  simd?: boolean;
  /** Force (or refuse) the relaxed-SIMD (FMA) build. Default: detect. */
  relaxed?: boolean;
  /** Total threads for the threaded build where the runtime allows shared memory. Default: the cores, at most 8. */
  threads?: number;
  /**
   * The folder holding the tinytune*.wasm builds. Default: ../build/ beside wasm/module.mjs,
   * right for Node and unbundled pages; a bundle that copies the files elsewhere passes it.
   */
  wasmBase?: string | URL;
  /** Load this .wasm instead of a build from wasmBase. */
  url?: string | URL;
  /** Use these .wasm bytes instead of loading a build. */
  bytes?: Uint8Array | ArrayBuffer;
}

/** Options of Engine.loadModel. */
export interface LoadModelOptions {
  /** Called as the weights download: bytes so far and in all. */
  onProgress?: (loadedBytes: number, totalBytes: number) => void;
  /** Frozen uint8-quantized layers multiply by the codes (about 2x faster). Default true. */
  integer?: boolean;
  /** The model's id when it has no card.json. */
  id?: string;
}

/** One op of a loaded model. */
export interface Layer {
  index: number;
  name: string;
  type: string;
  /** [height, width, channels] of its output. */
  shape: [number, number, number];
  /** The inverted-residual block it belongs to, or null. */
  block: string | null;
  aliases: string[];
}

/** A model's card.json (the zoo's description of it), loosely typed. */
export interface ModelCard {
  id: string;
  name: string;
  license?: string;
  labels?: string[];
  feature?: { layer: string; alias?: string; size: number };
  [key: string]: unknown;
}

/** A probability for one class. */
export interface ClassProbability {
  label: string;
  index: number;
  probability: number;
}

/** Whether this runtime validates WebAssembly SIMD (128-bit). */
export function hasSimd(): boolean;
/** Whether this runtime validates relaxed SIMD (f32x4.relaxed_madd). */
export function hasRelaxedSimd(): boolean;
/** Whether this runtime can run the threaded builds (shared memory; pages must be cross-origin isolated). */
export function canThread(): boolean;

/**
 * Loads the engine: the fastest build the runtime supports (relaxed SIMD, SIMD, scalar;
 * threaded where allowed). Rejects with an EngineError naming the file when a build is
 * missing from a Node install, or listing each URL tried when no build loads in a browser.
 */
export function createEngine(opts?: EngineOptions): Promise<Engine>;

/** A loaded engine: one WebAssembly instance, any number of models. */
export class Engine {
  /** Whether a SIMD build runs. */
  readonly simd: boolean;
  /** Which build runs: 'relaxed SIMD', 'SIMD' or 'scalar'. */
  readonly build: 'relaxed SIMD' | 'SIMD' | 'scalar';
  /** Threads the engine's kernels run on (1 unless a threaded build got its workers). */
  readonly threads: number;
  /** Releases the engine's worker threads (it keeps working, on one thread). */
  close(): Promise<void>;
  /**
   * Loads a tfjs graph or layers model: a URL or (in Node) a path of model.json or of its
   * folder. Rejects with an Error naming the URL ("cannot load model.json from <url>: 404
   * Not Found"), the shard or the layer at fault.
   */
  loadModel(source: string | URL, opts?: LoadModelOptions): Promise<Model>;
  /** Decodes an image to 8-bit RGB. Throws an EngineError for bytes that are not an image. */
  decodeImage(image: ImageInput): { width: number; height: number; rgb: Uint8Array };
  /** Bytes of WebAssembly memory in use. */
  memoryBytes(): number;
}

/** A backbone loaded into the engine. */
export class Model {
  /** The model's id (its card's, or LoadModelOptions.id), or null. */
  readonly id: string | null;
  readonly card: ModelCard | null;
  /** The model's own class names, or null. */
  readonly labels: string[] | null;
  /** [height, width, channels] of the input. */
  readonly inputShape: [number, number, number];
  /** Every op, in order. */
  readonly layers: Layer[];
  /** Index of the layer embed() stops at (default: the pooled feature vector). */
  cut: number;
  /** A hash of the weights; saved classifiers refuse another backbone. */
  readonly weightHash: string;
  /** Finds a layer by name, alias or index. Throws an EngineError naming it if there is none. */
  layerIndex(nameOrIndex: string | number): number;
  /** Moves the cut. Throws an EngineError for an unknown layer. */
  setCut(nameOrIndex: string | number): void;
  /** [height, width, channels] of op i's output. */
  shape(i: number): [number, number, number];
  /**
   * The activation at the cut (or opts.cut) for one image. Throws an EngineError for an
   * unreadable image or an unknown layer.
   */
  embed(image: ImageInput, opts?: { cut?: string | number; crop?: 'center' }): Float32Array;
  /** The model's own head: probabilities with labels, best first. Throws as embed does. */
  classify(image: ImageInput, opts?: { topk?: number; crop?: 'center' }): ClassProbability[];
  /** Runs the network on raw input floats [n, h, w, c]. Throws an EngineError on a size mismatch. */
  runInput(floats: Float32Array, n?: number, upto?: number): Float32Array;
  /** Bytes the engine holds for this model. */
  memoryBytes(): number;
  /** Frees the model's engine memory; it must not be used afterwards. */
  dispose(): void;
}

/** Augmentation settings; `true` in options means these defaults. */
export interface AugmentSettings {
  scaleMin?: number;
  ratioMin?: number;
  ratioMax?: number;
  flip?: boolean;
  brightness?: number;
  contrast?: number;
  saturation?: number;
}

/** The augmentation defaults: a mild random resized crop, flips and colour jitter. */
export const DEFAULT_AUGMENT: Required<AugmentSettings>;
