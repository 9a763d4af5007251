#!/usr/bin/env python3
"""PyTorch eager f32 peer for the CPU bench (bench/suites/peers.ts), 2 threads. Protocol: peer_protocol.py.

Tasks (the driver checks every output against lmdr's before timing):
  gemm    torch.mm of two n x n f32 matrices: the machine's measured f32 GEMM peak
  encode  a plain Qwen2/Llama forward written here (no transformers): RMSNorm, q/k/v (+bias),
          rotary embeddings (rotate-half), causal GQA attention, SwiGLU MLP, final norm; the
          last token's hidden state, L2-normalised (lmdr's eos pooling), batches of equal lengths
  topk    torch.matmul + torch.topk over query chunks
  score   the same forward with the LM head at the target positions: sum log p(target | context)
          per pair (bench/suites/score.ts), length-sorted padded batches
  train   the same forward with LoRA (y = xW^T + b + alpha/r (xA^T)B^T) on every projection,
          lmdr's adapter values, autograd through the frozen base; InfoNCE over in-batch + hard
          negatives with temperature-scaled cosine scores (cpp/core/retrieval_loss.h), gradient
          clipping at norm 1, AdamW: one step per run
"""
import json
import math
import mmap
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

from peer_protocol import serve

DTYPES = {"F32": np.float32, "F16": np.float16}


def load_safetensors(path):
    """{name: f32 tensor}; the format is an 8-byte little-endian header length, a JSON header, the data."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        if t["dtype"] not in DTYPES:
            raise ValueError(f"{path}: {name} is {t['dtype']}; this peer reads F32/F16 only")
        a, b = t["data_offsets"]
        arr = np.frombuffer(data, dtype=DTYPES[t["dtype"]], count=(b - a) // np.dtype(DTYPES[t["dtype"]]).itemsize, offset=8 + n + a)
        out[name] = torch.from_numpy(arr.astype(np.float32)).reshape(t["shape"])
    return out


class Decoder:
    """Qwen2/Llama decoder forward over [batch, length] ids; lora: {module path: (A, B)} with scale."""

    def __init__(self, model_dir, lora=None, lora_scale=0.0):
        with open(os.path.join(model_dir, "config.json")) as f:
            self.cfg = json.load(f)
        c = self.cfg
        self.w = load_safetensors(os.path.join(model_dir, "model.safetensors"))
        self.H, self.nh, self.kv = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"]
        self.d = c.get("head_dim") or self.H // self.nh
        self.eps = c["rms_norm_eps"]
        self.theta = c.get("rope_theta", 10000.0)
        self.layers = c["num_hidden_layers"]
        self.lora = lora or {}
        self.lora_scale = lora_scale

    def linear(self, x, name):
        y = F.linear(x, self.w[name + ".weight"], self.w.get(name + ".bias"))
        ab = self.lora.get(name)
        if ab is not None:
            y = y + self.lora_scale * F.linear(F.linear(x, ab[0]), ab[1])
        return y

    def rmsnorm(self, x, name):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.w[name + ".weight"]

    def rope(self, L):
        inv = 1.0 / (self.theta ** (torch.arange(0, self.d, 2, dtype=torch.float64) / self.d))
        f = torch.outer(torch.arange(L, dtype=torch.float64), inv)
        emb = torch.cat([f, f], -1)
        return emb.cos().float(), emb.sin().float()

    @staticmethod
    def rotate(x, cos, sin):
        h = x.shape[-1] // 2
        return x * cos + torch.cat([-x[..., h:], x[..., :h]], -1) * sin

    def last_hidden(self, ids):
        return self.rmsnorm(self.layers_forward(ids)[:, -1], "model.norm")

    def hidden(self, ids):
        """Final-normed hidden states [B, L, H]. Right-padded rows are exact at their real positions:
        the causal mask already keeps every real token from attending to the padding after it."""
        return self.rmsnorm(self.layers_forward(ids), "model.norm")

    def layers_forward(self, ids):
        B, L = ids.shape
        cos, sin = self.rope(L)
        mask = torch.full((L, L), float("-inf")).triu(1)
        x = self.w["model.embed_tokens.weight"][ids]
        for l in range(self.layers):
            p = f"model.layers.{l}"
            h = self.rmsnorm(x, f"{p}.input_layernorm")
            q = self.linear(h, f"{p}.self_attn.q_proj").view(B, L, self.nh, self.d).transpose(1, 2)
            k = self.linear(h, f"{p}.self_attn.k_proj").view(B, L, self.kv, self.d).transpose(1, 2)
            v = self.linear(h, f"{p}.self_attn.v_proj").view(B, L, self.kv, self.d).transpose(1, 2)
            q, k = self.rotate(q, cos, sin), self.rotate(k, cos, sin)
            rep = self.nh // self.kv
            k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
            s = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(self.d)) + mask
            a = torch.matmul(torch.softmax(s, -1), v).transpose(1, 2).reshape(B, L, self.nh * self.d)
            x = x + self.linear(a, f"{p}.self_attn.o_proj")
            h = self.rmsnorm(x, f"{p}.post_attention_layernorm")
            g = F.silu(self.linear(h, f"{p}.mlp.gate_proj")) * self.linear(h, f"{p}.mlp.up_proj")
            x = x + self.linear(g, f"{p}.mlp.down_proj")
        return x


def read_ids(msg):
    return torch.from_numpy(np.fromfile(msg["ids"], dtype=np.int32).astype(np.int64)).view(msg["sequences"], msg["length"])


def gemm(msg):
    n = msg["n"]
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
    torch.mm(a, b)
    return {"flops": 2.0 * n ** 3, "torch": torch.__version__, "threads": torch.get_num_threads()}, lambda: torch.mm(a, b)


def encode(msg):
    model = Decoder(msg["model"])
    ids = read_ids(msg)
    batch = msg["batch"]

    @torch.inference_mode()
    def run():
        return torch.cat([F.normalize(model.last_hidden(ids[b:b + batch]), dim=-1) for b in range(0, ids.shape[0], batch)])

    run().numpy().astype(np.float32).tofile(msg["out"])
    return {"torch": torch.__version__, "threads": torch.get_num_threads()}, run


def topk(msg):
    N, Q, H, k = msg["corpus_rows"], msg["queries_rows"], msg["dim"], msg["k"]
    corpus = torch.from_numpy(np.fromfile(msg["corpus"], dtype=np.float32)).view(N, H)
    queries = torch.from_numpy(np.fromfile(msg["queries"], dtype=np.float32)).view(Q, H)
    chunk = max(1, min(Q, msg["score_bytes"] // (4 * N)))  # query rows whose score block fits

    @torch.inference_mode()
    def run():
        parts = [torch.topk(torch.matmul(queries[a:a + chunk], corpus.T), k, dim=1) for a in range(0, Q, chunk)]
        return torch.cat([p.values for p in parts]), torch.cat([p.indices for p in parts])

    scores, ids = run()
    ids.to(torch.int32).numpy().tofile(msg["out_ids"])
    scores.numpy().tofile(msg["out_scores"])
    return {"torch": torch.__version__, "threads": torch.get_num_threads(), "chunk": chunk}, run


def train(msg):
    adapter = load_safetensors(msg["lora"])  # lmdr's adapter values: "layers.N.<module>.lora_A.weight"
    lora = {}
    for name, t in adapter.items():
        module, which = "model." + name[: -len(".lora_A.weight")], name[-len("lora_A.weight"):-len(".weight")]
        lora.setdefault(module, [None, None])[0 if which == "lora_A" else 1] = t.clone().requires_grad_(True)
    model = Decoder(msg["model"], lora, msg["alpha"] / msg["r"])
    params = [t for ab in lora.values() for t in ab]
    opt = torch.optim.AdamW(params, lr=msg["lr"], betas=(0.9, 0.999), eps=1e-8, weight_decay=msg["weight_decay"])
    ids = read_ids(msg)
    B, G, T = msg["batch"], msg["group"], msg["temperature"]
    target = torch.arange(B) * G

    def loss_fn():
        e = F.normalize(model.last_hidden(ids), dim=-1)
        s = e[:B] @ e[B:].T / T
        return F.cross_entropy(s, target)

    loss = loss_fn()
    loss.backward()
    grad_norm = math.sqrt(sum(float(p.grad.double().pow(2).sum()) for p in params))
    opt.zero_grad(set_to_none=True)

    def step():
        l = loss_fn()
        l.backward()
        torch.nn.utils.clip_grad_norm_(params, msg["clip"])
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(l)

    return {"loss": float(loss), "grad_norm": grad_norm, "torch": torch.__version__, "threads": torch.get_num_threads()}, step


def score(msg):
    """LLM reward scoring: sum of log p(target token | context, earlier target tokens) per pair, in
    length-sorted right-padded batches; the LM head (tied to the embeddings unless lm_head.weight
    exists) only at the target positions."""
    model = Decoder(msg["model"])
    with open(msg["pairs"]) as f:
        pairs = [json.loads(line) for line in f if line.strip()]
    head = model.w.get("lm_head.weight", model.w["model.embed_tokens.weight"])
    batch = msg["batch"]
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i]["context_ids"]) + len(pairs[i]["target_ids"]))

    @torch.inference_mode()
    def run():
        sums = [0.0] * len(pairs)
        for b in range(0, len(order), batch):
            idx = order[b:b + batch]
            seqs = [pairs[i]["context_ids"] + pairs[i]["target_ids"] for i in idx]
            ids = torch.zeros(len(seqs), max(map(len, seqs)), dtype=torch.long)
            for j, s in enumerate(seqs):
                ids[j, :len(s)] = torch.tensor(s)
            h = model.hidden(ids)
            for j, i in enumerate(idx):
                c, target = len(pairs[i]["context_ids"]), pairs[i]["target_ids"]
                lp = torch.log_softmax(h[j, c - 1:c - 1 + len(target)] @ head.T, -1)
                sums[i] = float(lp[torch.arange(len(target)), torch.tensor(target)].sum())
        return sums

    with open(msg["out"], "w") as f:
        json.dump(run(), f)
    return {"torch": torch.__version__, "threads": torch.get_num_threads()}, run


def setup_threads(fn):
    def wrapped(msg):
        torch.set_num_threads(int(msg["threads"]))
        return fn(msg)
    return wrapped


if __name__ == "__main__":
    serve({name: setup_threads(fn) for name, fn in {"gemm": gemm, "encode": encode, "topk": topk, "train": train, "score": score}.items()})
