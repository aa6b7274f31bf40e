// llama.cpp decode speed (node-llama-cpp's prebuilt CPU build in .llama-ref), for
// bench_runtime.py --decode:  node llama_decode_speed.mjs MODEL.gguf N_NEW THREADS REPEATS
// Greedy generation of N_NEW tokens after the one-token prompt [BOS], one token per step (as
// `temper generate` does), after one untimed warm-up; prints JSON {"load_seconds", "seconds":
// [per timed repeat], "n_new": [tokens generated]}. Model load and the prompt are excluded.
// node-llama-cpp's per-token JavaScript overhead is included, which slightly favours temper.
import path from "node:path";
import { createRequire } from "node:module";

const ref = process.env.TEMPER_LLAMA_REF_DIR ?? path.join(path.dirname(new URL(import.meta.url).pathname), "../.llama-ref");
const require = createRequire(path.join(ref, "package.json"));
const { getLlama } = await import(require.resolve("node-llama-cpp"));

const [modelPath, nArg, threadsArg, repeatsArg] = process.argv.slice(2);
const n = Number(nArg), threads = Number(threadsArg), repeats = Number(repeatsArg);
const t0 = performance.now();
const llama = await getLlama({ gpu: false, build: "never", skipDownload: true, logLevel: "error" });
const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
const context = await model.createContext({ contextSize: n + 64, batchSize: 8, threads });
const sequence = context.getSequence();
const loadSeconds = (performance.now() - t0) / 1000;

const seconds = [], nNew = [];
for (let i = 0; i <= repeats; i++) {
  await sequence.clearHistory();
  let count = 0, t = 0;
  for await (const token of sequence.evaluate([1], { temperature: 0 })) {
    if (count === 0) t = performance.now();  // first token: the prompt's step, not timed
    if (++count > n) break;
  }
  if (i > 0) {
    seconds.push((performance.now() - t) / 1000);
    nNew.push(count - 1);
  }
}
process.stdout.write(JSON.stringify({ load_seconds: loadSeconds, seconds, n_new: nNew }));
process.exit(0);
