// The CPU peer bench's own pieces (bench/cpu/, bench/suites/peers.ts), without the peers: the
// GGUF writer read back by a reader written here from the format description (ggml's gguf.h),
// the checks that compare lmdr with a peer, and the worker protocol driving lmdr's worker.
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { GGUF_ALIGNMENT, qwen2GgufName, qwen2ToGguf, writeGguf } from '../../bench/cpu/gguf.ts';
import { interleave, pythonWith, Worker, workerEnv } from '../../bench/cpu/workers.ts';
import { forwardFlops, minCosine, topkAgreement } from '../../bench/suites/peers.ts';
import { makeTinyModel } from '../helpers/tiny-models.ts';
import { tempDir } from '../helpers/tmp.ts';

/** A GGUF v3 reader from the format description: header, typed key/values, tensor infos, aligned data. */
function readGguf(file: string) {
  const b = fs.readFileSync(file);
  let at = 0;
  const u32 = () => { at += 4; return b.readUInt32LE(at - 4); };
  const u64 = () => { at += 8; return Number(b.readBigUInt64LE(at - 8)); };
  const str = () => { const n = u64(); at += n; return b.toString('utf8', at - n, at); };
  const value = (type: number): unknown => {
    switch (type) {
      case 4: return u32();
      case 5: at += 4; return b.readInt32LE(at - 4);
      case 6: at += 4; return b.readFloatLE(at - 4);
      case 7: at += 1; return b[at - 1] === 1;
      case 8: return str();
      case 9: { const t = u32(); return Array.from({ length: u64() }, () => value(t)); }
      default: throw new Error(`value type ${type} not expected here`);
    }
  };
  const magic = b.toString('latin1', 0, 4);
  at = 4;
  const version = u32();
  const nTensors = u64(), nKv = u64();
  const kv: Record<string, unknown> = {};
  for (let i = 0; i < nKv; i++) { const k = str(); kv[k] = value(u32()); }
  const infos = Array.from({ length: nTensors }, () => {
    const name = str();
    const dims = Array.from({ length: u32() }, () => u64());
    return { name, dims, type: u32(), offset: u64() };
  });
  const dataStart = Math.ceil(at / GGUF_ALIGNMENT) * GGUF_ALIGNMENT;
  const tensors = Object.fromEntries(infos.map((t) => {
    const n = t.dims.reduce((x, y) => x * y, 1);
    const start = dataStart + t.offset;
    const values = t.type === 0 ? Array.from({ length: n }, (_, i) => b.readFloatLE(start + 4 * i)) : Array.from({ length: n }, (_, i) => b.readUInt16LE(start + 2 * i));
    return [t.name, { ...t, values }];
  }));
  return { magic, version, kv, tensors, size: b.length };
}

describe('ship: CPU peer bench pieces', function () {
  this.timeout(120000);

  it('writes GGUF v3 that an independent reader parses: typed metadata, dims innermost first, aligned f32/f16 data', () => {
    const file = path.join(tempDir(), 'x.gguf');
    const a = Float32Array.from({ length: 6 }, (_, i) => 0.5 * i - 1.25); // [2, 3] row-major
    const h = Float32Array.from([1, -2, 0.5, 65504, 1 / 3]);
    writeGguf(file, {
      'general.architecture': { type: 'string', value: 'qwen2' },
      'x.count': { type: 'u32', value: 4000000000 },
      'x.neg': { type: 'i32', value: -7 },
      'x.eps': { type: 'f32', value: 1e-6 },
      'x.flag': { type: 'bool', value: true },
      'x.words': { type: 'strings', value: ['a', 'bé', ''] },
    }, [
      { name: 'm', dims: [3, 2], type: 'F32', data: () => a },
      { name: 'h', dims: [5], type: 'F16', data: () => h },
    ]);
    const g = readGguf(file);
    expect([g.magic, g.version]).to.deep.equal(['GGUF', 3]);
    expect(g.kv).to.deep.include({ 'general.architecture': 'qwen2', 'x.count': 4000000000, 'x.neg': -7, 'x.flag': true, 'x.words': ['a', 'bé', ''] });
    expect(g.kv['x.eps'] as number).to.be.closeTo(1e-6, 1e-12);
    expect(g.tensors.m.dims).to.deep.equal([3, 2]);
    expect(g.tensors.m.values).to.deep.equal(Array.from(a));
    expect(g.tensors.h.offset % GGUF_ALIGNMENT).to.equal(0);
    // IEEE half bits: 1 = 0x3c00, -2 = 0xc000, 0.5 = 0x3800, 65504 = 0x7bff, 1/3 rounds to 0x3555
    expect(g.tensors.h.values).to.deep.equal([0x3c00, 0xc000, 0x3800, 0x7bff, 0x3555]);
  });

  it('turns a Qwen2 model dir into llama.cpp names, reversed dims and a compact vocabulary', () => {
    expect(qwen2GgufName('model.layers.3.self_attn.k_proj.bias')).to.equal('blk.3.attn_k.bias');
    expect(qwen2GgufName('model.layers.0.mlp.down_proj.weight')).to.equal('blk.0.ffn_down.weight');
    expect(qwen2GgufName('model.embed_tokens.weight')).to.equal('token_embd.weight');
    expect(() => qwen2GgufName('model.layers.0.mlp.w9.weight')).to.throw(/no GGUF name/);
    const dir = makeTinyModel({ arch: 'qwen2', hidden: 16, layers: 1, heads: 2, kvHeads: 1, intermediate: 24, vocab: 40, tieWordEmbeddings: true, seed: 3 });
    const file = path.join(tempDir(), 'm.gguf');
    qwen2ToGguf(dir, file, { weights: 'F32', vocabIds: [7, 2, 39] });
    const g = readGguf(file);
    expect(g.kv).to.deep.include({ 'general.architecture': 'qwen2', 'qwen2.block_count': 1, 'qwen2.embedding_length': 16, 'qwen2.pooling_type': 3, 'tokenizer.ggml.model': 'none', 'qwen2.vocab_size': 3 });
    expect(g.tensors['blk.0.ffn_gate.weight'].dims).to.deep.equal([16, 24]);
    expect(g.tensors['token_embd.weight'].dims).to.deep.equal([16, 3]);
    // row 1 of the compact table is row 2 of the model's embedding table
    const st = fs.readFileSync(path.join(dir, 'model.safetensors'));
    const headerLen = Number(st.readBigUInt64LE(0));
    const emb = JSON.parse(st.toString('utf8', 8, 8 + headerLen))['model.embed_tokens.weight'];
    const row2 = Array.from({ length: 16 }, (_, i) => st.readFloatLE(8 + headerLen + emb.data_offsets[0] + 4 * (2 * 16 + i)));
    expect(g.tensors['token_embd.weight'].values.slice(16, 32)).to.deep.equal(row2);
  });

  it('compares embeddings by cosine and top-k lists by overlap and score difference', () => {
    expect(minCosine(Float32Array.from([1, 0, 0, 2]), Float32Array.from([2, 0, 0, 1]), 2)).to.be.closeTo(1, 1e-12);
    expect(minCosine(Float32Array.from([1, 0, 3, 4]), Float32Array.from([1, 1, 3, 4]), 2)).to.be.closeTo(Math.SQRT1_2, 1e-7);
    const r = topkAgreement(Int32Array.from([1, 2, 5, 6]), Float32Array.from([0.9, 0.8, 0.7, 0.6]), Int32Array.from([2, 1, 5, 7]), Float32Array.from([0.9, 0.8, 0.7, 0.65]), 2);
    expect(r.overlap).to.equal(0.75);
    expect(r.maxScoreDiff).to.be.closeTo(0.05, 1e-6);
    // one 2-token sequence through a 1-layer model, counted by hand: 2*params per token + causal attention
    const s = { hidden: 4, layers: 1, heads: 2, kvHeads: 1, intermediate: 8, vocab: 10 };
    expect(forwardFlops(s, 1, 2)).to.equal(2 * 2 * (4 * 4 * 2 + 2 * 4 * 2 + 3 * 4 * 8) + 2 * 2 * 2 * 2 * 2);
  });

  it("drives lmdr's worker over the protocol: exact top-k checked by brute force, interleaved medians and page faults", async () => {
    const dir = tempDir();
    const [N, Q, H, k] = [300, 5, 8, 4];
    const corpus = Float32Array.from({ length: N * H }, (_, i) => Math.sin(i * 1.37) + 0.1 * Math.cos(i * 0.11));
    const queries = Float32Array.from({ length: Q * H }, (_, i) => Math.cos(i * 2.03));
    fs.writeFileSync(path.join(dir, 'c'), corpus);
    fs.writeFileSync(path.join(dir, 'q'), queries);
    const w = Worker.node('lmdr', 'bench/cpu/lmdr-worker.ts', workerEnv('default', 2, false));
    try {
      await w.request({ cmd: 'setup', task: 'topk', corpus: path.join(dir, 'c'), queries: path.join(dir, 'q'), corpus_rows: N, queries_rows: Q, dim: H, k, out_ids: path.join(dir, 'i'), out_scores: path.join(dir, 's') });
      const raw = fs.readFileSync(path.join(dir, 'i'));
      const ids = new Int32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
      for (let q = 0; q < Q; q++) {
        const dots = Array.from({ length: N }, (_, r) => { let d = 0; for (let h = 0; h < H; h++) d += queries[q * H + h] * corpus[r * H + h]; return [d, r]; });
        dots.sort((x, y) => y[0] - x[0]);
        expect(Array.from(ids.subarray(q * k, (q + 1) * k))).to.deep.equal(dots.slice(0, k).map((d) => d[1]));
      }
      const t = (await interleave([w], 3, () => {})).get(w)!;
      expect(t.all).to.have.length(3);
      expect(t.seconds).to.be.greaterThan(0);
      expect(t.minflt).to.be.at.least(0);
      // a bad request comes back as an error naming it, and the worker ends
      let failure: Error | undefined;
      try {
        await w.request({ cmd: 'nonsense' });
      } catch (err) {
        failure = err as Error;
      }
      expect(failure?.message).to.match(/lmdr: unknown command "nonsense"/);
    } finally {
      await w.close();
    }
  });

  it('names the missing Python module and the way to install it', () => {
    const r = pythonWith('lmdr_no_such_module_xyz');
    expect(r.python).to.equal(undefined);
    expect(r.reason).to.match(/lmdr_no_such_module_xyz.*does not import/);
  });
});
