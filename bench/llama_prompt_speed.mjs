// llama.cpp prompt-processing speed (node-llama-cpp's prebuilt CPU build in .llama-ref), for
// bench_runtime.py:  node llama_prompt_speed.mjs MODEL.gguf N_TOKENS THREADS REPEATS
// Evaluates N_TOKENS random ids (< 512) as one batch, after one untimed warm-up; prints JSON
// {"load_seconds", "seconds": [per timed repeat]}. Model load is excluded from "seconds".
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
const context = await model.createContext({ contextSize: n + 64, batchSize: n, threads });
const sequence = context.getSequence();
const loadSeconds = (performance.now() - t0) / 1000;

// A fixed pseudo-random sequence (LCG): speed does not depend on which ids they are.
let state = 12345;
const tokens = Array.from({ length: n }, () => 3 + ((state = (state * 1103515245 + 12345) % 2147483648) % 509));
const seconds = [];
for (let i = 0; i <= repeats; i++) {
  await sequence.clearHistory();
  const t = performance.now();
  await sequence.evaluateWithoutGeneratingNewTokens(tokens);
  if (i > 0) seconds.push((performance.now() - t) / 1000);
}
process.stdout.write(JSON.stringify({ load_seconds: loadSeconds, seconds }));
process.exit(0);
