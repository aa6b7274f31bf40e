// Greedy answers from llama.cpp (node-llama-cpp's LlamaCompletion: the prompt tokenized and
// BOS-prefixed as llama.cpp does for a model without a chat template, temperature 0, stops at
// end-of-generation or after max_new tokens), optionally with GGUF LoRA adapters:
//   node llama_answers.mjs JOBS.json
// JOBS.json: [{"model": M.gguf, "lora": [{"path": A.gguf, "scale": 1}], "questions": [texts],
//              "max_new": 8, "out": OUT.json}]   OUT.json: the generated text per question.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

const ref = process.env.TEMPER_LLAMA_REF_DIR ?? path.join(path.dirname(new URL(import.meta.url).pathname), "../../.llama-ref");
const require = createRequire(path.join(ref, "package.json"));
const { getLlama, LlamaCompletion } = await import(require.resolve("node-llama-cpp"));

const jobs = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const llama = await getLlama({ gpu: false, build: "never", skipDownload: true, logLevel: "error" });
for (const job of jobs) {
  const model = await llama.loadModel({ modelPath: job.model, gpuLayers: 0 });
  const options = { contextSize: 256, batchSize: 256, threads: 1 };
  if (job.lora.length) options.lora = { adapters: job.lora.map((l) => ({ filePath: l.path, scale: l.scale })) };
  const context = await model.createContext(options);
  const answers = [];
  for (const q of job.questions) {
    // A fresh sequence per question, so no question sees another's tokens.
    const sequence = context.getSequence();
    const completion = new LlamaCompletion({ contextSequence: sequence });
    answers.push(await completion.generateCompletion(q, { maxTokens: job.max_new, temperature: 0 }));
    completion.dispose({ disposeSequence: true });
  }
  fs.writeFileSync(job.out, JSON.stringify(answers));
  await context.dispose();
  await model.dispose();
}
process.exit(0);
