#!/usr/bin/env python3
"""Generates the example scenarios in this folder (deterministic; run from anywhere).

The paper's settings (Li et al., arXiv 2410.17043, section 8): 8 GPUs, two LIMoE-like models ("b16", "b32")
with 8 experts and 4 MoE layers each, skewed top-1 routing; a homogeneous cluster at 100 Gbps, or four GPU
types at 100/80/50/40 Gbps, two of each (compute speed ordered like bandwidth: 1.0/0.8/0.5/0.4).
The paper does not publish its traffic matrices; these are synthetic with the same shape:
  - tokens per shard: 16 images x 196 patches (b16) or x 49 patches (b32); 1536 bytes per token
    (hidden 768, bf16);
  - expert popularity per layer ~ Zipf(s) with s in [0.8, 1.6], experts in random order, +-30% noise
    per shard;
  - expert FFN 60 us per MB of tokens (9.4 MFLOP per token at ~100 TFLOP/s effective), gate and
    aggregation 5 us per shard.
Plus a modern shape: 64 experts top-8 on 8 GPUs, data-parallel shards (traffic rows = GPUs).
"""
import json
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
BYTES_PER_TOKEN = 1536


def zipf_popularity(rng, n, s):
    pop = [1.0 / (k + 1) ** s for k in range(n)]
    rng.shuffle(pop)
    total = sum(pop)
    return [p / total for p in pop]


def experts_layer(rng, n, tokens_per_shard, skew):
    pop = zipf_popularity(rng, n, skew)
    rows = []
    for _ in range(n):
        rows.append([int(tokens_per_shard * p * rng.uniform(0.7, 1.3)) * BYTES_PER_TOKEN for p in pop])
    return {"traffic_bytes": rows, "gate_us": 5, "expert_us_per_mb": 60, "aggregate_us": 5}


def paper_models(seed, layers=4, n=8):
    rng = random.Random(seed)
    models = []
    for name, tokens in (("b16", 16 * 196), ("b32", 16 * 49)):
        models.append({"name": name, "top_k": 1, "expert_memory_mb": 9.4,
                       "layers": [experts_layer(rng, n, tokens, rng.uniform(0.8, 1.6)) for _ in range(layers)]})
    return models


HOMOGENEOUS = [{"count": 8, "bandwidth_gbps": 100, "compute_speed": 1.0, "memory_gb": 80}]
HETEROGENEOUS = [
    {"count": 2, "bandwidth_gbps": 100, "compute_speed": 1.0, "memory_gb": 80, "type": "A"},
    {"count": 2, "bandwidth_gbps": 80, "compute_speed": 0.8, "memory_gb": 80, "type": "B"},
    {"count": 2, "bandwidth_gbps": 50, "compute_speed": 0.5, "memory_gb": 40, "type": "C"},
    {"count": 2, "bandwidth_gbps": 40, "compute_speed": 0.4, "memory_gb": 40, "type": "D"},
]


def write(name, scenario):
    with open(os.path.join(HERE, name + ".json"), "w") as f:
        f.write(json.dumps(scenario, indent=1) + "\n")


def main():
    for cluster_name, gpus in (("homogeneous", HOMOGENEOUS), ("heterogeneous", HETEROGENEOUS)):
        for mode in ("exclusive", "colocated"):
            name = "paper-%s-%s" % (cluster_name, mode)
            write(name, {"name": name, "mode": mode, "phase_latency_us": 0, "seed": 1, "gpus": gpus,
                         "models": paper_models(seed=2024)})
    # The same homogeneous cluster and models, costed with 20 us per phase (launch + synchronisation).
    write("paper-homogeneous-exclusive-latency", {
        "name": "paper-homogeneous-exclusive-latency", "mode": "exclusive", "phase_latency_us": 20, "seed": 1,
        "gpus": HOMOGENEOUS, "models": paper_models(seed=2024)})
    # 64 experts, top-8, 8 GPUs with data-parallel shards: 4096 tokens per GPU, 2 layers; hot experts may get
    # up to 8 extra replicas.
    rng = random.Random(64)
    layers = []
    for _ in range(2):
        pop = zipf_popularity(rng, 64, 1.1)
        rows = []
        for _g in range(8):
            # 4096 tokens x top-8 assignments spread by popularity (capped so no expert gets a token twice).
            rows.append([int(min(4096, 4096 * 8 * p) * rng.uniform(0.8, 1.2)) * 4096 for p in pop])
        layers.append({"traffic_bytes": rows, "gate_us": 8, "expert_us_per_mb": 25, "aggregate_us": 8})
    write("many-experts-64-top8", {
        "name": "many-experts-64-top8", "mode": "exclusive", "phase_latency_us": 10, "seed": 1,
        "gpus": [{"count": 4, "bandwidth_gbps": 400, "compute_speed": 1.0, "memory_gb": 80},
                 {"count": 4, "bandwidth_gbps": 200, "compute_speed": 0.6, "memory_gb": 80}],
        "placement": {"max_replicas_per_expert": 2, "max_extra_replicas": 8},
        "models": [{"name": "moe64", "traffic": "gpus", "top_k": 8, "expert_memory_mb": 50, "layers": layers}]})


if __name__ == "__main__":
    main()
