// The npm package's main entry ("tinytune"): the engine API (engine.mjs) and the
// transfer-learning API (transfer.mjs) in one import, plus loadBackbone, which loads a
// model from a folder the user hosts. The package ships no model files and has no CDN
// default: the models are ~3-4 MB each, more than the whole engine (see docs/API.md).
import { EngineError } from './errors.mjs';
import { DEFAULT_MODEL, modelUrl, hasScheme } from './models.mjs';

export { createEngine, Engine, Model, EngineError, DEFAULT_AUGMENT } from './engine.mjs';
export { Classifier, TRAIN_DEFAULTS, trainableRange, backboneBlocks, readClassifierInfo } from './transfer.mjs';
export { hasSimd, hasRelaxedSimd, canThread } from './module.mjs';
export { DEFAULT_MODEL, modelUrl };

/**
 * Loads model `opts.id` (default DEFAULT_MODEL) from `baseUrl`, the folder holding
 * <id>/model.json, its weight shards and card.json. Other opts go to engine.loadModel.
 * A wrong base URL rejects with an EngineError naming the URL that failed.
 */
export async function loadBackbone(engine, baseUrl, opts = {}) {
  const { id = DEFAULT_MODEL, ...rest } = opts;
  let url = modelUrl(baseUrl, id);
  if (!hasScheme(url) && globalThis.process?.versions?.node) {
    // a path: as a file URL, so a missing folder is reported as .../<id>/model.json
    const [{ pathToFileURL }, { resolve }] = await Promise.all([import('node:url'), import('node:path')]);
    url = `${pathToFileURL(resolve(url)).href}/`;
  }
  try {
    return await engine.loadModel(url, { id, ...rest });
  } catch (e) {
    if (!/^cannot load model\.json/.test(e?.message)) throw e; // tfjs.mjs's loader throws plain Errors
    const err = new EngineError(
      `cannot load model '${id}' from the base URL ${baseUrl}: ${e.message} ` +
        `(the base URL must be the folder that holds ${id}/model.json)`,
      e.code,
    );
    err.url = url;
    throw err;
  }
}
