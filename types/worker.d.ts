// "tinytune/worker" (wasm/worker.mjs) is a module worker's script: importing it (as a
// bundle's worker entry) installs the engine's message handler; it exports nothing.
export {};
