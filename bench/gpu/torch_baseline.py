#!/usr/bin/env python3
"""PyTorch baselines for lmdr's GPU benchmarks (bench/gpu/*.ts call this in the same run).

  make-model --out DIR                 a Qwen2.5-0.5B-shaped Qwen2 model with random weights (bf16)
  encode --model DIR [--passages N --length L --batch B]
                                       transformers + bf16 + SDPA: last-token (EOS) pooling + L2 norm
  topk [--corpus N --dim H --queries Q --k K]
                                       torch.matmul + torch.topk over a bf16 corpus on the GPU, plus
                                       the GEMM alone (the roofline lmdr's fused top-k is held to)
  attention [--lengths 256,1024,8192 --heads 14 --dim 64]
                                       F.scaled_dot_product_attention TFLOP/s (for reference)
  train-step --model DIR [--batch 32 --group 8 --query-length 64 --passage-length 256 --steps 4]
                                       PEFT LoRA (r 32, alpha 64, dropout 0.1, every linear module) on
                                       transformers bf16 SDPA, adapters in fp32: EOS pooling, cosine /
                                       0.02 InfoNCE over in-batch + hard negatives, clip 1, AdamW;
                                       median step time after one warm-up step, and the step's model
                                       FLOPs (for MFU against the bf16 dense peak)
  score --model DIR --pairs FILE.jsonl [--batch 32]
                                       AutoModelForCausalLM bf16 SDPA: full logits, log_softmax, the
                                       mean log-prob of each line's target_ids after its context_ids
Each prints one JSON line on stdout. Needs torch (CUDA) and transformers (+ peft for train-step).
"""
import argparse
import json
import time

import torch


def timed(fn, repeats):
    fn()  # warm-up (allocations, cuBLAS heuristics, kernel selection)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / repeats


def load_bf16(path):
    """transformers' AutoModel in bf16 with SDPA attention on the GPU (dtype= since transformers 5, torch_dtype= before)."""
    from transformers import AutoModel
    try:
        model = AutoModel.from_pretrained(path, dtype=torch.bfloat16, attn_implementation="sdpa")
    except TypeError:
        model = AutoModel.from_pretrained(path, torch_dtype=torch.bfloat16, attn_implementation="sdpa")
    return model.cuda()


def make_model(args):
    from transformers import Qwen2Config, Qwen2ForCausalLM
    cfg = Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                      num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768,
                      rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True,
                      eos_token_id=151643, bos_token_id=151643, use_sliding_window=False)
    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):  # HF's init on the CPU takes tens of seconds
        model = Qwen2ForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(args.out, safe_serialization=True)
    print(json.dumps({"model": args.out, "params": sum(p.numel() for p in model.parameters())}))


def encode(args):
    model = load_bf16(args.model).eval()
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 151643, (args.passages, args.length), generator=g)
    ids[:, -1] = 151643  # EOS last, as lmdr's eos pooling input
    ids = ids.cuda()
    mask = torch.ones_like(ids)

    @torch.inference_mode()
    def run():
        for b in range(0, args.passages, args.batch):
            h = model(input_ids=ids[b:b + args.batch], attention_mask=mask[b:b + args.batch]).last_hidden_state
            torch.nn.functional.normalize(h[:, -1].float(), dim=-1).cpu()

    t = timed(run, args.repeats)
    print(json.dumps({"passages_per_s": args.passages / t, "seconds": t, "batch": args.batch,
                      "torch": torch.__version__, "device": torch.cuda.get_device_name()}))


def topk(args):
    g = torch.Generator(device="cuda").manual_seed(2)
    corpus = torch.randn(args.corpus, args.dim, device="cuda", generator=g, dtype=torch.bfloat16)
    queries = torch.randn(args.queries, args.dim, device="cuda", generator=g, dtype=torch.bfloat16)
    chunk = max(1, min(args.queries, (4 << 30) // (args.corpus * 4)))  # <= 4 GiB of fp32 scores

    def matmul_topk():
        for q0 in range(0, args.queries, chunk):
            s = torch.matmul(queries[q0:q0 + chunk], corpus.T).float()
            torch.topk(s, args.k, dim=1).indices.cpu()

    def gemm_only():
        for q0 in range(0, args.queries, chunk):
            torch.matmul(queries[q0:q0 + chunk], corpus.T)

    t = timed(matmul_topk, args.repeats)
    tg = timed(gemm_only, args.repeats)
    flops = 2.0 * args.queries * args.corpus * args.dim
    print(json.dumps({"seconds": t, "queries_per_s": args.queries / t, "gemm_seconds": tg,
                      "gemm_tflops": flops / tg / 1e12, "torch": torch.__version__,
                      "device": torch.cuda.get_device_name()}))


def attention(args):
    out = {}
    for L in [int(x) for x in args.lengths.split(",")]:
        B = max(1, 16384 // L)
        q = torch.randn(B, args.heads, L, args.dim, device="cuda", dtype=torch.bfloat16)
        k = torch.randn_like(q)
        v = torch.randn_like(q)
        for causal in (True, False):
            t = timed(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal), args.repeats)
            flops = 4.0 * B * args.heads * L * L * args.dim * (0.5 if causal else 1.0)
            out[f"{L}{'_causal' if causal else ''}"] = flops / t / 1e12
    print(json.dumps({"sdpa_tflops": out, "torch": torch.__version__, "device": torch.cuda.get_device_name()}))


def train_step_flops(cfg, lengths):
    """Model FLOPs of one LoRA step with frozen base weights: forward 2*P per token plus the
    backward's input gradients 2*P per token (no weight gradients), P the non-embedding linear
    parameters; causal attention 2*L^2*d per layer forward (QK^T and PV, half the square), 3x that
    for forward + backward. LoRA's own matrices are left out (under 1%)."""
    H, I, nh, kv, nl = cfg.hidden_size, cfg.intermediate_size, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.num_hidden_layers
    d = H // nh
    P = nl * (H * nh * d + 2 * H * kv * d + nh * d * H + 3 * H * I)
    tokens = sum(lengths)
    attn = sum(nl * 2 * L * L * nh * d for L in lengths)
    return 4 * P * tokens + 3 * attn


def train_step(args):
    from peft import LoraConfig, get_peft_model
    import peft
    model = load_bf16(args.model)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    model = get_peft_model(model, LoraConfig(r=32, lora_alpha=64, lora_dropout=0.1, target_modules=targets))
    for p in model.parameters():  # adapters in fp32, as lmdr keeps them (PEFT's autocast_adapter_dtype does too)
        if p.requires_grad:
            p.data = p.data.float()
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)
    B, G = args.batch, args.group
    g = torch.Generator().manual_seed(5)
    q = torch.randint(0, 151643, (B, args.query_length), generator=g)
    p = torch.randint(0, 151643, (B * G, args.passage_length), generator=g)
    q[:, -1] = 151643
    p[:, -1] = 151643
    q, p = q.cuda(), p.cuda()
    target = torch.arange(B, device="cuda") * G
    losses = []

    def embed(ids):
        h = model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
        return torch.nn.functional.normalize(h[:, -1].float(), dim=-1)

    def step():
        s = embed(q) @ embed(p).T / 0.02
        loss = torch.nn.functional.cross_entropy(s, target)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss))  # syncs, like lmdr reading its loss

    step()  # warm-up
    times = []
    for _ in range(args.steps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    times.sort()
    lengths = [args.query_length] * B + [args.passage_length] * (B * G)
    print(json.dumps({"seconds": times[len(times) // 2], "tokens": sum(lengths), "loss": losses[-1],
                      "flops_per_step": train_step_flops(model.config, lengths), "peak_tflops": 989.0,
                      "max_memory_gb": torch.cuda.max_memory_allocated() / 1e9,
                      "torch": torch.__version__, "peft": peft.__version__, "device": torch.cuda.get_device_name()}))


def score(args):
    from transformers import AutoModelForCausalLM
    try:
        model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.bfloat16, attn_implementation="sdpa")
    except TypeError:
        model = AutoModelForCausalLM.from_pretrained(args.model, torch_dtype=torch.bfloat16, attn_implementation="sdpa")
    model = model.cuda().eval()
    pairs = [json.loads(line) for line in open(args.pairs)]
    seqs = torch.tensor([p["context_ids"] + p["target_ids"] for p in pairs])  # equal lengths: no padding
    C, T = len(pairs[0]["context_ids"]), len(pairs[0]["target_ids"])
    targets = seqs[:, C:].cuda()
    seqs = seqs.cuda()
    means = []

    @torch.inference_mode()
    def run():
        means.clear()
        for b in range(0, len(pairs), args.batch):
            logits = model(input_ids=seqs[b:b + args.batch]).logits[:, C - 1:C - 1 + T].float()
            lp = torch.log_softmax(logits, dim=-1).gather(-1, targets[b:b + args.batch, :, None])[..., 0]
            means.extend(lp.mean(-1).tolist())

    t = timed(run, args.repeats)
    print(json.dumps({"seconds": t, "means": means, "torch": torch.__version__, "device": torch.cuda.get_device_name()}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("make-model")
    p.add_argument("--out", required=True)
    p = sub.add_parser("encode")
    p.add_argument("--model", required=True)
    p.add_argument("--passages", type=int, default=2048)
    p.add_argument("--length", type=int, default=256)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    p = sub.add_parser("topk")
    p.add_argument("--corpus", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=896)
    p.add_argument("--queries", type=int, default=10_000)
    p.add_argument("--k", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3)
    p = sub.add_parser("attention")
    p.add_argument("--lengths", default="256,1024,8192")
    p.add_argument("--heads", type=int, default=14)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--repeats", type=int, default=10)
    p = sub.add_parser("train-step")
    p.add_argument("--model", required=True)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--group", type=int, default=8)
    p.add_argument("--query-length", type=int, default=64)
    p.add_argument("--passage-length", type=int, default=256)
    p.add_argument("--steps", type=int, default=4)
    p = sub.add_parser("score")
    p.add_argument("--model", required=True)
    p.add_argument("--pairs", required=True)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    {"score": score, "make-model": make_model, "encode": encode, "topk": topk, "attention": attention,
     "train-step": train_step}[args.cmd](args)


if __name__ == "__main__":
    main()
