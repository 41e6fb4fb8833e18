// Types of the transfer-learning API (wasm/transfer.mjs): cache a backbone's activations
// for labelled images, train the last K blocks and a new head, predict, evaluate, save.
import type { Model, ImageInput, AugmentSettings, Engine } from './engine.js';

/** Options of new Classifier(model, opts). */
export interface ClassifierOptions {
  /** Class names (unique). */
  labels?: string[];
  /**
   * Backbone blocks to train with the head: 'auto' (the default: fit tries a head alone and
   * the last 2 blocks within its time budget and keeps the better on validation), or K >= 0.
   */
  blocks?: 'auto' | number;
  /** Units of the head's hidden ReLU layer (default 256; 0 for a linear head). */
  hidden?: number;
  /** Dropout after the hidden layer (default 0.2 with a hidden layer). */
  dropout?: number;
  /** Augmentation: true (DEFAULT_AUGMENT), false, or settings. Default true. */
  augment?: boolean | AugmentSettings;
  /** Views cached per image: 1 plain + augmented ones (default 4; 1 without augmentation). */
  views?: number;
  /** Random seed (default 1). */
  seed?: number;
  /** The layer features are taken at (default: the model's cut, the pooled features). */
  cut?: string | number;
}

/** fit() options: TRAIN_DEFAULTS fields and callbacks. */
export interface FitOptions {
  epochs?: number;
  batchSize?: number;
  optimizer?: 'adam' | 'adamw' | 'sgd';
  /** Peak learning rate; null picks 2e-3 for a head alone, 5e-4 with blocks. */
  learningRate?: number | null;
  weightDecay?: number;
  momentum?: number;
  /** Fraction of the steps spent warming up. */
  warmup?: number;
  cosine?: boolean;
  labelSmoothing?: number;
  /** Weight classes inversely to their image counts. */
  balanced?: boolean;
  /** Fraction of the images held out to pick the epochs and calibrate (0: none). Default 0.2. */
  validationFraction?: number;
  /** Epochs without a better validation loss before stopping. */
  patience?: number;
  seed?: number;
  /** After validation picks the epochs, retrain on every image. Default true. */
  refit?: boolean;
  /** Blocks start from a head first trained on the frozen features, and train 10 epochs at 2e-4 (else 30 at 5e-4 from a fresh head): about a third of the blocks' time, some accuracy lost on the benchmark. Default false. */
  warmStart?: boolean;
  /** Seconds auto mode may spend (default max(30, 1 s per image)). */
  timeBudget?: number;
  /** Batches between yields to the event loop. */
  batchesPerTick?: number;
  /** Aborting stops training; the best weights so far are kept and the report says cancelled. */
  signal?: AbortSignal;
  /** Called after each epoch. */
  onEpoch?: (metrics: EpochMetrics, progress: BatchProgress) => void;
  /** Called between epochs as batches run. */
  onBatch?: (progress: BatchProgress) => void;
}

/** The defaults of every fit() option. */
export const TRAIN_DEFAULTS: Readonly<Required<Omit<FitOptions, 'timeBudget' | 'batchesPerTick' | 'signal' | 'onEpoch' | 'onBatch'>>>;

/** Which run a metric belongs to: the validation run, the refit on every image, or a run without validation. */
export type Phase = 'validate' | 'refit' | 'train';

/** One epoch's figures. valLoss / valAccuracy are NaN without a validation split. */
export interface EpochMetrics {
  phase: Phase;
  /** 1-based epoch. */
  epoch: number;
  epochs: number;
  trainLoss: number;
  trainAccuracy: number;
  valLoss: number;
  valAccuracy: number;
  learningRate: number;
  seconds: number;
}

/** Progress within training (epoch 0-based). */
export interface BatchProgress {
  phase: Phase;
  epoch: number;
  epochs: number;
  batch: number;
  batchesPerEpoch: number;
  done: boolean;
  stoppedEarly: boolean;
  bestEpoch: number;
  trainLoss: number;
  trainAccuracy: number;
  valLoss: number;
  valAccuracy: number;
  bestValLoss: number;
  learningRate: number;
  nTrain: number;
  nVal: number;
}

/** An image that could not be read, and why. */
export interface Skipped {
  name: string;
  reason: string;
}

/** One candidate auto mode tried, or skipped for time. */
export type AutoTrial =
  { blocks: number; validationAccuracy: number | null; validationLoss: number; seconds: number } | { blocks: number; skipped: string };

/** What auto mode chose and why. */
export interface AutoReport {
  /** The time budget in seconds. */
  budget: number;
  tried: AutoTrial[];
  /** The blocks kept. */
  blocks: number;
  why: string;
  /** e.g. 'K=2'. */
  summary: string;
}

/** What fit() resolves to. */
export interface FitReport {
  labels: string[];
  /** Every epoch, the validation run's then the refit's. */
  history: EpochMetrics[];
  /** The epoch validation picked (1-based). */
  bestEpoch: number;
  stoppedEarly: boolean;
  cancelled: boolean;
  /** On the validation images (the first run's: an honest estimate), or null without validation. */
  validationAccuracy: number | null;
  /** Validation confusion matrix, rows: true class. */
  confusion: number[][];
  perClassAccuracy: (number | null)[];
  nTrain: number;
  nVal: number;
  views: number;
  /** The backbone blocks trained. */
  blocks: number;
  skipped: Skipped[];
  seconds: number;
  learningRate: number;
  /** The options used (callbacks removed). */
  settings: Record<string, unknown>;
  /** Auto mode's choice, or null when blocks were given. */
  auto: AutoReport | null;
  /** The refit on every image, or null (no validation, refit off, or cancelled). */
  refit: { epochs: number; images: number; trainLoss: number | null } | null;
  /** The softmax temperature calibrated on validation (1 without). */
  temperature: number;
}

/** A class probability from a trained classifier. */
export interface Prediction {
  label: string;
  index: number;
  probability: number;
  /** True when the image is unlike every class ("none of these"); the same on every entry. */
  unknown: boolean;
}

/** A labelled image for evaluate(). */
export interface LabelledImage {
  image: ImageInput;
  label: string;
  name?: string;
}

/** What evaluate() returns. */
export interface Evaluation {
  labels: string[];
  /** Images scored (readable ones). */
  n: number;
  accuracy: number;
  /** Rows: true class; columns: predicted. */
  confusion: number[][];
  perClassAccuracy: (number | null)[];
  /** Expected calibration error over 10 bins, mean negative log-likelihood, the temperature used. */
  calibration: { ece: number; nll: number; temperature: number };
  /** Images flagged "none of these". */
  unknown: number;
  skipped: Skipped[];
}

/** A TensorFlow.js layers model: model.json's object, the weights.bin bytes and metadata.json's object. */
export interface TfjsModelArtifacts {
  modelJson: Record<string, unknown>;
  weightData: Uint8Array;
  /** Labels in output order, input size and range, backbone id and weights hash, K. */
  metadata: Record<string, unknown>;
}

/** An ONNX model (opset 13): the file's bytes and the metadata it carries. */
export interface OnnxModelArtifacts {
  bytes: Uint8Array;
  metadata: Record<string, unknown>;
}

/** A saved classifier's metadata. */
export interface ClassifierInfo {
  format: 'tinytune-classifier';
  version: 1;
  labels: string[];
  backbone: { id: string | null; hash: string; inputShape: [number, number, number] };
  cut: string;
  boundary: string;
  blocks: number;
  [key: string]: unknown;
}

/** A classifier trained on a backbone's features. */
export class Classifier {
  /**
   * A classifier on `model`. Throws an EngineError for duplicate class names, an unknown
   * cut layer, or more blocks than the backbone has before the cut.
   */
  constructor(model: Model, opts?: ClassifierOptions);
  readonly model: Model;
  readonly labels: string[];
  /** The backbone blocks that train (after fit in auto mode: the ones kept). */
  readonly blocks: number;
  /** Images that could not be read, with the reason. */
  readonly skipped: Skipped[];
  /** The last fit report (or the saved metrics of a loaded classifier), or null. */
  report: FitReport | null;
  /** The calibrated softmax temperature (after fit or load). */
  temperature?: number;
  /** A loaded classifier's metadata. */
  meta?: ClassifierInfo;
  /**
   * Adds activations computed elsewhere (a feature cache, a worker): `views` views at the
   * classifier's cache boundary, as addImage caches them. Throws an EngineError for an
   * unknown class or data of another size.
   */
  addFeatures(data: Float32Array | Uint16Array, label: string | number, name?: string): void;
  /**
   * Runs the frozen backbone on an image (and its augmented views) and caches the result.
   * Returns false, with the reason in `skipped`, for an unreadable image. Throws an
   * EngineError for an unknown class.
   */
  addImage(image: ImageInput, label: string | number, name?: string): boolean;
  /** Images per class, in label order. */
  counts(): number[];
  /**
   * Trains (see FitOptions). Rejects with an EngineError when there are fewer than 2
   * classes, a class has no images, the optimizer is unknown, or the loss becomes
   * non-finite (then `error.report` holds the report of the best weights, which are kept).
   */
  fit(opts?: FitOptions): Promise<FitReport>;
  /**
   * Class probabilities for an image, best first (top k). Throws an EngineError if the
   * classifier has not been trained or the image is unreadable.
   */
  predict(image: ImageInput, topk?: number): Prediction[];
  /** Probabilities for an activation already computed at the classifier's boundary. */
  predictActivation(activation: Float32Array): Float32Array;
  /**
   * How like its nearest class an activation at the boundary is (cosine of pooled
   * features), and that class. Needs a trained or loaded classifier.
   */
  similarity(activation: Float32Array): { similarity: number; index: number };
  /**
   * Scores labelled images the classifier did not train on. Throws an EngineError if it is
   * untrained, a label is not one of its classes (naming it), the list is empty, or no
   * image could be read; unreadable ones are listed in `skipped`.
   */
  evaluate(items: LabelledImage[]): Evaluation;
  /** The classifier as one file (.ttm bytes). Throws an EngineError if it is untrained. */
  save(): Uint8Array;
  /**
   * Reads a saved classifier onto a loaded backbone. Throws an EngineError for a file that
   * is not a tinytune classifier, is corrupt, or was made on another backbone.
   */
  static load(model: Model, bytes: Uint8Array): Classifier;
  /**
   * The trained part as a TensorFlow.js layers model (input: the boundary activation);
   * with opts.whole, the whole model from image (224x224x3 in [0,1]) to probabilities.
   * Throws an EngineError if untrained, or naming an op the exporter cannot write.
   */
  exportTfjs(opts?: { whole?: boolean }): TfjsModelArtifacts;
  /**
   * The same as an ONNX model (NHWC float32 input 'input', output 'probabilities').
   * Throws an EngineError if untrained, or naming an op the exporter cannot write.
   */
  exportOnnx(opts?: { whole?: boolean }): OnnxModelArtifacts;
  /** Frees the classifier's engine memory. */
  dispose(): void;
}

/**
 * Where the trainable part starts for K blocks: `first` op, and `boundary`, the cached
 * activation. Throws an EngineError for K < 0, non-integers, or more blocks than exist.
 */
export function trainableRange(model: Model, blocks: 'auto' | number, cut?: number): { first: number; boundary: number };

/** The backbone's block ids before the cut, in order. */
export function backboneBlocks(model: Model, cut?: number): string[];
/** Throws an EngineError when fit() could not train: fewer than 2 classes, or a class (named) without images. */
export function checkTrainable(labels: string[], counts: number[]): void;

/** A saved classifier's metadata without loading it. Throws an EngineError for a bad file. */
export function readClassifierInfo(engine: Engine, bytes: Uint8Array): ClassifierInfo;
