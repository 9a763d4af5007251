#!/usr/bin/env python3
"""FAISS peer for the CPU bench (bench/suites/peers.ts): exact inner-product top-k with
IndexFlatIP over the corpus the driver wrote (raw f32 rows), 2 OpenMP threads. Protocol: peer_protocol.py."""
import numpy as np

from peer_protocol import serve


def topk(msg):
    import faiss
    faiss.omp_set_num_threads(int(msg["threads"]))
    N, Q, H, k = msg["corpus_rows"], msg["queries_rows"], msg["dim"], msg["k"]
    corpus = np.fromfile(msg["corpus"], dtype=np.float32).reshape(N, H)
    queries = np.fromfile(msg["queries"], dtype=np.float32).reshape(Q, H)
    index = faiss.IndexFlatIP(H)
    index.add(corpus)
    scores, ids = index.search(queries, k)
    ids.astype(np.int32).tofile(msg["out_ids"])
    scores.astype(np.float32).tofile(msg["out_scores"])
    return {"faiss": faiss.__version__, "threads": faiss.omp_get_max_threads()}, lambda: index.search(queries, k)


if __name__ == "__main__":
    serve({"topk": topk})
