// The browser demo's page, shared by index.html (an import map, no build step) and
// bundled.mjs (esbuild): name two classes, give each some images, train, then predict,
// all through the worker client, so the page never blocks. ?models=<folder> says where
// the model files are hosted (default ./models/), ?model=<id> which one.
/** @param {import('tinytune/client').TinytuneClient} client */
export function demo(client) {
  const query = new URLSearchParams(location.search);
  document.body.innerHTML = `<h1>tinytune demo</h1>
    <p><input id="name0" value="class A"> <input type="file" id="files0" multiple accept="image/*"></p>
    <p><input id="name1" value="class B"> <input type="file" id="files1" multiple accept="image/*"></p>
    <p><button id="train" disabled>Train</button> Predict: <input type="file" id="predict" accept="image/*" disabled></p>
    <pre id="log"></pre>`;
  const $ = (/** @type {string} */ id) => /** @type {HTMLInputElement} */ (document.getElementById(id));
  const log = (/** @type {string} */ s) => {
    $('log').textContent += `${s}\n`;
  };
  const failed = (/** @type {Error} */ e) => log(`error: ${e.message}`);

  client.on('epoch', (e) => log(`${e.phase} epoch ${e.epoch}/${e.epochs}: loss ${e.trainLoss.toFixed(3)}`));
  client.ready
    .then((env) => {
      log(`engine: ${env.build}, ${env.threads} thread(s)`);
      return client.loadModel(query.get('models') ?? './models/', query.get('model') ?? undefined);
    })
    .then((info) => {
      log(`model ${info.id} loaded`);
      $('train').disabled = false;
    })
    .catch(failed);

  $('train').onclick = async () => {
    $('train').disabled = true;
    try {
      await client.reset();
      for (const k of [0, 1]) {
        for (const file of $(`files${k}`).files ?? []) {
          const r = await client.addImage($(`name${k}`).value, file, { name: file.name });
          if (!r.ok) log(`skipped ${file.name}: ${r.reason}`);
        }
      }
      const report = await client.train({ epochs: 20 });
      log(`trained: validation accuracy ${report.validationAccuracy}, ${report.seconds.toFixed(1)} s`);
      $('predict').disabled = false;
    } catch (e) {
      failed(/** @type {Error} */ (e));
    }
    $('train').disabled = false;
  };
  $('predict').onchange = async () => {
    const file = $('predict').files?.[0];
    if (!file) return;
    const [best] = await client.predict(file).catch((e) => (failed(e), []));
    if (best) log(`predict ${file.name}: ${best.label} ${best.probability.toFixed(3)}`);
  };
}
