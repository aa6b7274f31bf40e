// llama.cpp itself (node-llama-cpp's prebuilt CPU build of the llama.cpp release in
// .llama-ref), driven from the tests as an independent reference:
//   node llama_run.mjs logits   MODEL.gguf TOKENS.json OUT.f32   full-vocab logits at every position
//   node llama_run.mjs generate MODEL.gguf TOKENS.json N         greedy continuation (JSON ids)
//   node llama_run.mjs tokenize MODEL.gguf STRINGS.json          ids per string (JSON), special tokens parsed
// Logits are written float32 little-endian, row-major [position][token id].
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

const ref = process.env.TEMPER_LLAMA_REF_DIR ?? path.join(path.dirname(new URL(import.meta.url).pathname), "../../.llama-ref");
const require = createRequire(path.join(ref, "package.json"));
const { getLlama } = await import(require.resolve("node-llama-cpp"));

const [cmd, modelPath, inputPath, extra] = process.argv.slice(2);
const llama = await getLlama({ gpu: false, build: "never", skipDownload: true, logLevel: "error" });
const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
const input = JSON.parse(fs.readFileSync(inputPath, "utf8"));

if (cmd === "tokenize") {
  const out = input.map((s) => Array.from(model.tokenize(s, true)));
  process.stdout.write(JSON.stringify(out));
} else {
  const tokens = input;
  // f32 KV cache and no flash attention: the default f16 cache rounds K and V (~1e-3 relative).
  const context = await model.createContext({ contextSize: Math.max(256, tokens.length + 128), batchSize: 512, threads: 1,
    flashAttention: false, experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32" });
  const sequence = context.getSequence();
  if (cmd === "logits") {
    const items = tokens.map((t) => [t, { generateNext: { logits: true } }]);
    const res = await sequence.controlledEvaluate(items);
    let vocab = 0;
    for (const r of res) for (const [tok] of r.next.logits) vocab = Math.max(vocab, tok + 1);
    const out = new Float32Array(tokens.length * vocab);
    res.forEach((r, i) => { for (const [tok, v] of r.next.logits) out[i * vocab + tok] = v; });
    fs.writeFileSync(extra, Buffer.from(out.buffer));
    process.stdout.write(JSON.stringify({ positions: tokens.length, vocab }));
  } else if (cmd === "generate") {
    const ids = [];
    let next = await sequence.controlledEvaluate(tokens.map((t, i) => i === tokens.length - 1 ? [t, { generateNext: { token: true } }] : t));
    let tok = next[tokens.length - 1].next.token;
    for (let i = 0; i < Number(extra); i++) {
      ids.push(tok);
      const r = await sequence.controlledEvaluate([[tok, { generateNext: { token: true } }]]);
      tok = r[0].next.token;
    }
    process.stdout.write(JSON.stringify(ids));
  } else {
    throw new Error("unknown command " + cmd);
  }
}
process.exit(0);
