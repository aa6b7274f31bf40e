// llama.cpp (node-llama-cpp, as tests/runtime_gguf/llama_batch.mjs) with GGUF LoRA adapters:
//   node llama_lora.mjs JOBS.json
// JOBS.json: [{"model": M.gguf, "lora": [{"path": A.gguf, "scale": 1}], "tokens": [ids], "out": OUT.f32}
//            | {"model": M.gguf, "lora": [...], "questions": [texts], "max_new": 8, "out": OUT.json}]
// Logits (a "tokens" job): float32 LE [position][vocab], f32 KV cache, no flash attention, one
// thread. Answers (a "questions" job): llama.cpp as a user runs it (default context options),
// LlamaCompletion: each prompt tokenized and BOS-prefixed as llama.cpp does for a model without
// a chat template, greedy, up to max_new tokens or end of generation; OUT.json: text per question.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

const ref = process.env.TEMPER_LLAMA_REF_DIR ?? path.join(path.dirname(new URL(import.meta.url).pathname), "../../.llama-ref");
const require = createRequire(path.join(ref, "package.json"));
const { getLlama, LlamaCompletion } = await import(require.resolve("node-llama-cpp"));

async function logits(context, tokens) {
  const res = await context.getSequence().controlledEvaluate(tokens.map((t) => [t, { generateNext: { logits: true } }]));
  let vocab = 0;
  for (const r of res) for (const [tok] of r.next.logits) vocab = Math.max(vocab, tok + 1);
  const out = new Float32Array(tokens.length * vocab);
  res.forEach((r, i) => { for (const [tok, v] of r.next.logits) out[i * vocab + tok] = v; });
  return Buffer.from(out.buffer);
}

async function answers(context, questions, maxNew) {
  const out = [];
  for (const q of questions) {
    // A fresh sequence per question, so no question sees another's tokens.
    const completion = new LlamaCompletion({ contextSequence: context.getSequence() });
    out.push(await completion.generateCompletion(q, { maxTokens: maxNew, temperature: 0 }));
    completion.dispose({ disposeSequence: true });
  }
  return JSON.stringify(out);
}

const jobs = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const llama = await getLlama({ gpu: false, build: "never", skipDownload: true, logLevel: "error" });
for (const job of jobs) {
  // A fresh model per job: llama.cpp keeps adapters loaded until the model is disposed.
  const model = await llama.loadModel({ modelPath: job.model, gpuLayers: 0 });
  const options = job.tokens
    ? { contextSize: Math.max(256, job.tokens.length + 128), batchSize: 512, threads: 1, flashAttention: false,
        experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32" }
    : { contextSize: 256, batchSize: 256, threads: 1 };
  if (job.lora.length) options.lora = { adapters: job.lora.map((l) => ({ filePath: l.path, scale: l.scale })) };
  const context = await model.createContext(options);
  fs.writeFileSync(job.out, job.tokens ? await logits(context, job.tokens) : await answers(context, job.questions, job.max_new));
  await context.dispose();
  await model.dispose();
}
process.exit(0);
