// lmdr's side of the CPU peer comparisons (bench/suites/peers.ts), in a process of its own so it
// starts with the same malloc settings as the peers. Speaks the protocol of peer_protocol.py:
// setup (loads, writes the outputs the driver compares), run (one timed run), exit.
// Page faults per run come from process.resourceUsage() (getrusage of this process).
import fs from 'node:fs';
import readline from 'node:readline';
import { Engine } from '../../lib/engine.ts';
import { addLora } from '../../lib/adapters/peft.ts';
import { writeSafetensors } from '../../lib/model/safetensors.ts';
import { native } from '../../lib/native.ts';
import { contrastiveStep, type TrainBackbone } from '../../lib/train/trainer.ts';
import { normalRng } from '../../lib/train/random.ts';

type Msg = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
type Setup = (msg: Msg) => Promise<{ info: Record<string, unknown>; run: () => Promise<unknown> }>;

export const LORA_TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

const readF32 = (file: string) => {
  const b = fs.readFileSync(file);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
};
const readSequences = (msg: Msg): number[][] => {
  const b = fs.readFileSync(msg.ids);
  const ids = new Int32Array(b.buffer, b.byteOffset, b.byteLength / 4);
  return Array.from({ length: msg.sequences }, (_, i) => Array.from(ids.subarray(i * msg.length, (i + 1) * msg.length)));
};

const tasks: Record<string, Setup> = {
  async encode(msg) {
    const engine = await Engine.load(msg.model, { device: 'cpu' });
    const seqs = readSequences(msg);
    const run = async () => (await engine.encodeIds(seqs, { pooling: 'eos', batchSize: msg.batch, maxTokens: msg.batch * msg.length })).data;
    fs.writeFileSync(msg.out, await run());
    return { info: { dim: engine.dim }, run };
  },

  async topk(msg) {
    const corpus = readF32(msg.corpus), queries = readF32(msg.queries);
    const run = () => native().topk(queries, corpus, msg.queries_rows, msg.corpus_rows, msg.dim, msg.k, 'cpu');
    const r = await run();
    fs.writeFileSync(msg.out_ids, Int32Array.from(r.ids, Number));
    fs.writeFileSync(msg.out_scores, r.scores);
    return { info: {}, run };
  },

  async train(msg) {
    const engine = await Engine.load(msg.model, { device: 'cpu' });
    const model = engine.native;
    addLora(model, { targets: LORA_TARGETS, r: msg.r, alpha: msg.alpha, dropout: 0, seed: 1 });
    model.setTrainable('lora');
    // B starts at zero (PEFT's init): give it values so the adapters change the forward pass too
    const normal = normalRng(11);
    for (const p of model.params()) {
      if (p.name.includes('lora_B')) model.setParam(p.name, Float32Array.from(p.data, () => 0.02 * normal()));
    }
    writeSafetensors(msg.lora, model.params().map((p) => ({ name: p.name, shape: p.shape, data: p.data, dtype: 'F32' as const })));
    const seqs = readSequences(msg);
    const cuSeqlens = new Int32Array(seqs.length + 1);
    seqs.forEach((s, i) => (cuSeqlens[i + 1] = cuSeqlens[i] + s.length));
    const packed = { ids: Int32Array.from(seqs.flat()), cuSeqlens };
    const backbone = { model, pooling: 'eos' } as TrainBackbone;
    const shape = { batchSize: msg.batch, groupSize: msg.group, temperature: msg.temperature, similarity: 'cosine' as const, chunkSize: 0 };
    const loss = await contrastiveStep(backbone, packed, shape, 1);
    const gradNorm = Math.sqrt(model.gradSumSquares());
    model.zeroGrad();
    let step = 0;
    const run = async () => {
      step++;
      const l = await contrastiveStep(backbone, packed, shape, step);
      const norm = Math.sqrt(model.gradSumSquares());
      model.optimizerStep({ kind: 'adamw', lr: msg.lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: msg.weight_decay, step, gradScale: norm > msg.clip ? msg.clip / norm : 1 });
      model.zeroGrad();
      return l;
    };
    return { info: { loss, grad_norm: gradNorm }, run };
  },
};

async function main(): Promise<void> {
  let run: (() => Promise<unknown>) | undefined;
  const reply = (v: unknown) => process.stdout.write(JSON.stringify(v) + '\n');
  for await (const line of readline.createInterface({ input: process.stdin })) {
    const msg = JSON.parse(line) as Msg;
    try {
      if (msg.cmd === 'setup') {
        const task = tasks[msg.task];
        if (!task) throw new Error(`unknown task "${msg.task}"`);
        const s = await task(msg);
        run = s.run;
        reply({ ...s.info, addon: native().buildInfo().flags });
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

await main();
