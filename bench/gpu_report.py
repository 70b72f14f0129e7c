#!/usr/bin/env python3
"""Joins aurora-gpu-bench's and hf_moe_reference.py's JSON lines into the benchmark table
(markdown) of docs/benchmarks.md."""
import json
import sys


def load(path):
    rows = []
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    rows.append(json.loads(line))
    except FileNotFoundError:
        pass
    return rows


def main():
    rows = []
    for p in sys.argv[1:]:
        rows += load(p)
    models = []
    for r in rows:
        if r["model"] not in models:
            models.append(r["model"])

    def find(engine, model, kind, batch=None):
        for r in rows:
            if r["engine"] == engine and r["model"] == model and r["kind"] == kind and (batch is None or r.get("batch") == batch):
                return r
        return None

    print("| model | measure | Aurora (CUDA) | transformers eager bf16 | speed-up | HBM roofline | Aurora / roofline |")
    print("|---|---|---|---|---|---|---|")
    for m in models:
        a = find("aurora", m, "prefill")
        h = find("hf", m, "prefill")
        if a:
            hs = "%.0f tok/s" % h["tokens_per_s"] if h else "n/a"
            sp = "%.1fx" % (a["tokens_per_s"] / h["tokens_per_s"]) if h else "n/a"
            print("| %s | prefill %d tokens | %.0f tok/s | %s | %s | | |" % (m, a["prompt"], a["tokens_per_s"], hs, sp))
        batches = sorted({r["batch"] for r in rows if r["model"] == m and r["kind"] == "decode"})
        for b in batches:
            a = find("aurora", m, "decode", b)
            h = find("hf", m, "decode", b)
            if not a:
                continue
            hs = "%.2f ms" % h["ms"] if h else "n/a"
            sp = "%.1fx" % (h["ms"] / a["ms"]) if h else "n/a"
            print("| %s | decode batch %d, ms/step | %.3f ms | %s | %s | %.3f ms (%.2f GB at %.0f GB/s) | %.2fx |" % (
                m, b, a["ms"], hs, sp, a["roofline_ms"], a["bytes"] / 1e9, a["bandwidth_gbs"], a["ms"] / a["roofline_ms"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
