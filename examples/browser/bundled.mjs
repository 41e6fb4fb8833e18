// The demo's entry for a bundle (build.mjs): the worker and the .wasm files are separate
// files beside the bundle, so the client is told where they are.
import { TinytuneClient } from 'tinytune/client';
import { demo } from './demo.mjs';

demo(
  new TinytuneClient({
    worker: new URL('./worker.mjs', import.meta.url),
    wasmBase: new URL('./wasm/', import.meta.url),
  }),
);
