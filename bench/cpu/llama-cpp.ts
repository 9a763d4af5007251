// llama.cpp as an encode peer, through node-llama-cpp's prebuilt CPU binary. node-llama-cpp is
// not a dependency of lmdr: it is installed on demand, pinned, into bench/.peers/ (git-ignored)
// by `npx tsx bench/cpu/llama-cpp.ts --install` or by the encode peer suite when it is missing.
// Run without arguments this file is a bench worker (protocol: peer_protocol.py): the model is a
// GGUF from bench/cpu/gguf.ts (no tokenizer, last-token pooling) and the inputs are token ids.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { pathToFileURL } from 'node:url';
import { root } from './workers.ts';

export const NODE_LLAMA_CPP = 'node-llama-cpp@3.21.1';
export const PEERS_DIR = path.join(root, 'bench', '.peers');
const entry = path.join(PEERS_DIR, 'node_modules', 'node-llama-cpp', 'package.json');

/** undefined when the pinned node-llama-cpp is installed under bench/.peers, else why not. */
export function llamaCppMissing(): string | undefined {
  if (!fs.existsSync(entry)) return `${NODE_LLAMA_CPP} is not installed under bench/.peers (npx tsx bench/cpu/llama-cpp.ts --install)`;
  const version = JSON.parse(fs.readFileSync(entry, 'utf8')).version;
  if (`node-llama-cpp@${version}` !== NODE_LLAMA_CPP) return `bench/.peers has node-llama-cpp@${version}, not ${NODE_LLAMA_CPP} (reinstall with --install)`;
  return undefined;
}

/** `npm i -E --prefix bench/.peers node-llama-cpp@3.21.1` (no install scripts: the prebuilt binaries ship in its optional packages). */
export function installLlamaCpp(log: (m: string) => void): string | undefined {
  fs.mkdirSync(PEERS_DIR, { recursive: true });
  log(`installing ${NODE_LLAMA_CPP} into bench/.peers (npm i -E --prefix bench/.peers --ignore-scripts)`);
  const r = spawnSync('npm', ['i', '-E', '--no-audit', '--no-fund', '--ignore-scripts', '--prefix', PEERS_DIR, NODE_LLAMA_CPP], { encoding: 'utf8', timeout: 600_000 });
  if (r.status !== 0) return `npm i ${NODE_LLAMA_CPP} failed (offline?): ${(r.stderr || String(r.error)).trim().split('\n').slice(-2).join(' ')}`;
  return llamaCppMissing();
}

type Msg = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

async function worker(): Promise<void> {
  const missing = llamaCppMissing();
  if (missing) throw new Error(missing);
  const nlc = await import(pathToFileURL(path.join(PEERS_DIR, 'node_modules', 'node-llama-cpp', 'dist', 'index.js')).href);
  // getWarnings() tokenizes a test string to look for tokenizer problems; a model without a
  // tokenizer aborts there, so it reports no warnings instead
  nlc.LlamaModel.prototype.getWarnings = () => [];
  let run: (() => Promise<unknown>) | undefined;
  const reply = (v: unknown) => process.stdout.write(JSON.stringify(v) + '\n');
  for await (const line of readline.createInterface({ input: process.stdin })) {
    const msg = JSON.parse(line) as Msg;
    try {
      if (msg.cmd === 'setup') {
        if (msg.task !== 'encode') throw new Error(`unknown task "${msg.task}"`);
        const llama = await nlc.getLlama({ gpu: false, build: 'never', skipDownload: true, logLevel: nlc.LlamaLogLevel.error });
        const model = await llama.loadModel({
          modelPath: msg.gguf, gpuLayers: 0, defaultContextFlashAttention: false,
          experimentalDefaultContextKvCacheKeyType: 'F32', experimentalDefaultContextKvCacheValueType: 'F32',
        });
        const context = await model.createEmbeddingContext({ contextSize: 2 * msg.length, batchSize: 2 * msg.length, threads: msg.threads });
        const b = fs.readFileSync(msg.ids);
        const ids = new Int32Array(b.buffer, b.byteOffset, b.byteLength / 4);
        const remap: number[] | undefined = msg.vocab_ids;
        const newId = remap ? new Map(remap.map((id, i) => [id, i])) : undefined;
        const seqs = Array.from({ length: msg.sequences }, (_, i) => Array.from(ids.subarray(i * msg.length, (i + 1) * msg.length), (id) => (newId ? newId.get(id)! : id)));
        const embed = async () => {
          const out = new Float32Array(seqs.length * model.embeddingVectorSize);
          for (const [i, s] of seqs.entries()) out.set((await context.getEmbeddingFor(s)).vector, i * model.embeddingVectorSize);
          return out;
        };
        run = embed;
        fs.writeFileSync(msg.out, await embed());
        reply({ version: NODE_LLAMA_CPP, dim: model.embeddingVectorSize, threads: msg.threads });
      } else if (msg.cmd === 'run') {
        if (!run) throw new Error('run before setup');
        const f0 = process.resourceUsage().minorPageFault;
        const t0 = process.hrtime.bigint();
        await run();
        const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
        reply({ seconds, minflt: process.resourceUsage().minorPageFault - f0 });
      } else if (msg.cmd === 'exit') {
        break;
      } else throw new Error(`unknown command "${msg.cmd}"`);
    } catch (err) {
      process.stderr.write(`${(err as Error).stack}\n`);
      reply({ error: (err as Error).message });
      process.exit(1);
    }
  }
  process.exit(0);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  if (process.argv.includes('--install')) {
    const why = installLlamaCpp((m) => process.stderr.write(`${m}\n`));
    if (why) {
      process.stderr.write(`${why}\n`);
      process.exit(1);
    }
    process.stderr.write(`${NODE_LLAMA_CPP} installed under ${PEERS_DIR}\n`);
  } else await worker();
}
