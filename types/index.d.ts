// Types of the package's main entry ("tinytune", wasm/index.mjs).
import type { Engine, Model, LoadModelOptions } from './engine.js';

export * from './engine.js';
export * from './transfer.js';

/** The model loadBackbone loads when none is named: 'mobilenet_v2_mid'. */
export const DEFAULT_MODEL: string;

/**
 * The folder URL (or, in Node, path) of model `id` under `baseUrl`, with a trailing slash.
 * Throws an EngineError when baseUrl is missing (there is no CDN default) or id is invalid.
 */
export function modelUrl(baseUrl: string | URL, id?: string): string;

/**
 * Loads model opts.id (default DEFAULT_MODEL) from `baseUrl`, the folder you host that holds
 * <id>/model.json, its shards and card.json (a URL, or in Node a path). Rejects with an
 * EngineError naming the base URL and the file that failed when the URL is wrong.
 */
export function loadBackbone(engine: Engine, baseUrl: string | URL, opts?: LoadModelOptions & { id?: string }): Promise<Model>;
