// The page's side of the engine worker's protocol: the package's public client
// (wasm/client.mjs), started on the worker beside it.
export { EngineClient, WorkerError } from '../wasm/client.mjs';
