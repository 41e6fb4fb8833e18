// Where a model lives: a folder the user hosts (self-hosted; there is no CDN default),
// holding <id>/model.json, its weight shards and card.json. Shared by the main entry
// (index.mjs) and the worker client (client.mjs), which resolves URLs against the page
// before handing them to the worker.
import { EngineError } from './errors.mjs';

/** The model loadBackbone picks when none is named: MobileNetV2 1.4 (224), 1792 features. */
export const DEFAULT_MODEL = 'mobilenet_v2_mid';

export const hasScheme = (s) => /^[a-z][a-z0-9+.-]*:/i.test(s) && !/^[a-z]:[\\/]/i.test(s); // not a Windows drive

/**
 * The folder of model `id` under `baseUrl` (a URL, or in Node also a path), with a
 * trailing slash. A relative URL in a page resolves against the page.
 */
export function modelUrl(baseUrl, id = DEFAULT_MODEL) {
  if (baseUrl === undefined || baseUrl === null || baseUrl === '') {
    throw new EngineError(`a base URL for the models is required (tinytune has no CDN default): the folder that holds ${id}/model.json`);
  }
  if (typeof id !== 'string' || !/^[A-Za-z0-9_.-]+$/.test(id) || id.startsWith('.'))
    throw new EngineError(`invalid model id ${JSON.stringify(id)}`);
  const base = baseUrl instanceof URL ? baseUrl.href : String(baseUrl);
  const dir = base.endsWith('/') || base.endsWith('\\') ? base : `${base}/`;
  if (hasScheme(dir)) return new URL(`${id}/`, dir).href;
  const page = globalThis.document?.baseURI ?? globalThis.location?.href;
  return page && !globalThis.process?.versions?.node ? new URL(`${id}/`, new URL(dir, page)).href : `${dir}${id}/`;
}
