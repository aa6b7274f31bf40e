// llama.cpp (node-llama-cpp, as in tests/llama_ref/llama_run.mjs) over many models in one
// process, so the tests pay node's start-up once:
//   node llama_batch.mjs JOBS.json
// JOBS.json: [{"cmd": "logits", "model": M.gguf, "tokens": [ids], "out": OUT.f32}
//            | {"cmd": "tokenize", "model": M.gguf, "strings": [texts], "out": OUT.json}]
// Logits: float32 LE [position][vocab], f32 KV cache, no flash attention, one thread.
// Tokenize: ids per string, special tokens parsed, no BOS/EOS added.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

const ref = process.env.TEMPER_LLAMA_REF_DIR ?? path.join(path.dirname(new URL(import.meta.url).pathname), "../../.llama-ref");
const require = createRequire(path.join(ref, "package.json"));
const { getLlama } = await import(require.resolve("node-llama-cpp"));

const jobs = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const llama = await getLlama({ gpu: false, build: "never", skipDownload: true, logLevel: "error" });
const models = new Map();
for (const job of jobs) {
  if (!models.has(job.model)) models.set(job.model, await llama.loadModel({ modelPath: job.model, gpuLayers: 0 }));
  const model = models.get(job.model);
  if (job.cmd === "tokenize") {
    fs.writeFileSync(job.out, JSON.stringify(job.strings.map((s) => Array.from(model.tokenize(s, true)))));
    continue;
  }
  if (job.cmd !== "logits") throw new Error("unknown command " + job.cmd);
  const tokens = job.tokens;
  const context = await model.createContext({ contextSize: Math.max(256, tokens.length + 128), batchSize: 512, threads: 1,
    flashAttention: false, experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32" });
  const res = await context.getSequence().controlledEvaluate(tokens.map((t) => [t, { generateNext: { logits: true } }]));
  let vocab = 0;
  for (const r of res) for (const [tok] of r.next.logits) vocab = Math.max(vocab, tok + 1);
  const out = new Float32Array(tokens.length * vocab);
  res.forEach((r, i) => { for (const [tok, v] of r.next.logits) out[i * vocab + tok] = v; });
  fs.writeFileSync(job.out, Buffer.from(out.buffer));
  await context.dispose();
}
process.exit(0);
