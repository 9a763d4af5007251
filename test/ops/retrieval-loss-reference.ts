// Float64 reference of the fused retrieval loss's modes, written from REFERENCE.md's rules of
// FlagEmbedding's llm_embedder (and issue 13), independently of cpp/core/retrieval_loss.h: the
// scores as a plain double loop, each softmax over an explicit list of columns.
import { l2normalize } from './reference.ts';

export interface LossModes {
  temperature: number;
  cosine: boolean;
  inBatch?: boolean; // default true
  contrastiveWeight?: number; // default 1
  distill?: 'none' | 'kl' | 'stable';
  distillWeight?: number; // default 1 with distillation
  teacherTemperature?: number;
  studentTemperature?: number;
  teacher?: Float64Array; // [B*G]
}

function logSumExp(xs: number[]): number {
  const m = Math.max(...xs);
  return m + Math.log(xs.reduce((a, x) => a + Math.exp(x - m), 0));
}

/** Candidate indices of one group, highest teacher score first, ties in data order. */
export function teacherOrder(t: number[]): number[] {
  const idx = t.map((_, k) => k);
  // insertion sort: moves an element only past strictly smaller scores, so ties keep data order
  for (let i = 1; i < idx.length; i++) {
    const v = idx[i];
    let j = i - 1;
    while (j >= 0 && t[idx[j]] < t[v]) {
      idx[j + 1] = idx[j];
      j--;
    }
    idx[j + 1] = v;
  }
  return idx;
}

export function retrievalLoss(q: Float64Array, p: Float64Array, B: number, G: number, H: number, m: LossModes):
  { loss: number; contrastive: number; distill: number } {
  const qa = m.cosine ? l2normalize(q, B, H) : q;
  const pa = m.cosine ? l2normalize(p, B * G, H) : p;
  const distill = m.distill ?? 'none';
  const cw = m.contrastiveWeight ?? 1;
  const dw = m.distillWeight ?? (distill === 'none' ? 0 : 1);
  const Tt = m.teacherTemperature ?? 1;
  const Ts = m.studentTemperature ?? 1;
  const inBatch = m.inBatch ?? true;
  let contrastive = 0;
  let dist = 0;
  for (let b = 0; b < B; b++) {
    const s: number[] = [];
    for (let j = 0; j < B * G; j++) {
      let d = 0;
      for (let e = 0; e < H; e++) d += qa[b * H + e] * pa[j * H + e];
      s.push(d / m.temperature);
    }
    const cols = inBatch ? s.map((_, j) => j) : Array.from({ length: G }, (_, k) => b * G + k);
    const teacher = distill === 'none' ? [] : Array.from(m.teacher!.subarray(b * G, b * G + G));
    const order = distill === 'none' ? Array.from({ length: G }, (_, k) => k) : teacherOrder(teacher);
    contrastive += logSumExp(cols.map((j) => s[j])) - s[b * G + order[0]];
    if (distill === 'none') continue;
    const lseT = logSumExp(teacher.map((t) => t / Tt));
    const w = teacher.map((t) => Math.exp(t / Tt - lseT));
    if (distill === 'kl') {
      const x = Array.from({ length: G }, (_, k) => s[b * G + k] / Ts);
      const lse = logSumExp(x);
      for (let k = 0; k < G; k++) if (w[k] > 0) dist += w[k] * (Math.log(w[k]) - (x[k] - lse));
    } else {
      for (let i = 0; i < G; i++) {
        const masked = new Set(order.slice(0, i).map((k) => b * G + k));
        const keep = cols.filter((j) => !masked.has(j));
        dist += w[order[i]] * (logSumExp(keep.map((j) => s[j])) - s[b * G + order[i]]);
      }
    }
  }
  contrastive /= B;
  dist /= B;
  return { loss: cw * contrastive + dw * dist, contrastive, distill: dist };
}
