"""The peer side of bench/cpu/workers.ts: one JSON request per stdin line, one JSON reply per stdout line.

  {"cmd": "setup", "task": NAME, ...}  -> the task's setup(msg) runs (loads, checks, writes outputs
                                          for the driver to compare); replies its info dict
  {"cmd": "run"}                       -> one timed run of the task: {"seconds", "minflt"}
  {"cmd": "exit"}                      -> exits
A failure replies {"error": "..."} and exits 1. Progress and warnings go to stderr only.
"""
import json
import os
import resource
import sys
import time
import traceback


def blas_libraries():
    """The BLAS/LAPACK shared objects mapped into this process (which GEMM the peer really runs)."""
    found = set()
    with open("/proc/self/maps") as f:
        for line in f:
            p = line.split()[-1]
            if "blas" in os.path.basename(p).lower() or "mkl" in os.path.basename(p).lower():
                found.add(os.path.realpath(p))
    return sorted(found)


def serve(tasks):
    """tasks: name -> setup(msg) returning (info dict, run function)."""
    run = None
    out = sys.stdout
    for line in sys.stdin:
        msg = json.loads(line)
        try:
            if msg["cmd"] == "setup":
                info, run = tasks[msg["task"]](msg)
                info["blas"] = blas_libraries()
                reply = info
            elif msg["cmd"] == "run":
                f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                t0 = time.perf_counter()
                run()
                dt = time.perf_counter() - t0
                reply = {"seconds": dt, "minflt": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0}
            elif msg["cmd"] == "exit":
                return
            else:
                raise ValueError(f"unknown command {msg['cmd']!r}")
        except Exception as e:  # noqa: BLE001 - every failure goes back to the driver as text
            traceback.print_exc(file=sys.stderr)
            out.write(json.dumps({"error": f"{type(e).__name__}: {e}"}) + "\n")
            out.flush()
            sys.exit(1)
        out.write(json.dumps(reply) + "\n")
        out.flush()
