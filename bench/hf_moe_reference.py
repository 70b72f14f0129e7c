#!/usr/bin/env python3
"""Hugging Face transformers reference for aurora-gpu-bench: the same configs, random bf16 weights,
eager attention and eager experts, on the same GPU, measured the same way (prefill tokens/s for
one prompt; decode ms/step at each batch size with --prompt tokens of context, greedy next tokens,
host wall time around each forward with a CUDA synchronize). Appends JSON lines to --json.

One model at a time: a model is freed (and the CUDA cache emptied) before the next one loads, so a
93 GB Mixtral never shares the GPU with another copy. Run it after aurora-gpu-bench has exited.
"""
import argparse
import gc
import json
import os
import statistics
import sys
import time


def log(*a):
    print(*a, flush=True)


def build(config_dir, torch, transformers):
    cfg = transformers.AutoConfig.from_pretrained(config_dir)
    kwargs = dict(attn_implementation="eager")
    with torch.device("cuda"):
        try:
            model = transformers.AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16, **kwargs)
        except TypeError:
            model = transformers.AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.bfloat16, **kwargs)
    for setter, value in (("set_attn_implementation", "eager"), ("set_experts_implementation", "eager")):
        fn = getattr(model, setter, None)
        if fn is not None:
            try:
                fn(value)
            except Exception as e:  # older/newer transformers: keep what from_config chose
                log("  %s(%s) failed: %s" % (setter, value, e))
    model.eval()
    impl = (getattr(model.config, "_attn_implementation", "?"), getattr(model.config, "_experts_implementation", "?"))
    return model, cfg, impl


def timed(torch, fn):
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    torch.cuda.synchronize()
    return out, (time.perf_counter() - t0) * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", nargs="+", required=True, help="model directories holding config.json")
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--batches", default="1,16,64")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--budget-s", type=float, default=60.0, help="per model; later measurements are skipped past it")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    import torch
    import transformers

    batches = [int(b) for b in args.batches.split(",")]
    out = open(args.json, "a") if args.json else None
    log("torch %s, transformers %s, %s" % (torch.__version__, transformers.__version__, torch.cuda.get_device_name(0)))
    for config_dir in args.configs:
        name = os.path.basename(os.path.normpath(config_dir))
        t_start = time.perf_counter()
        try:
            model, cfg, impl = build(config_dir, torch, transformers)
        except Exception as e:
            log("%s: could not build: %r" % (name, e))
            continue
        nbytes = sum(p.numel() * p.element_size() for p in model.parameters())
        log("== %s (transformers eager bf16, attn=%s experts=%s): %.2f GiB of weights, built in %.1f s"
            % (name, impl[0], impl[1], nbytes / 2**30, time.perf_counter() - t_start))
        g = torch.Generator(device="cuda").manual_seed(0)
        try:
            with torch.inference_mode():
                ids = torch.randint(0, cfg.vocab_size, (1, args.prompt), device="cuda", generator=g)
                times = []
                for rep in range(3):
                    _, ms = timed(torch, lambda: model(input_ids=ids, use_cache=True))
                    if rep > 0:
                        times.append(ms)
                ms = statistics.median(times)
                tps = args.prompt / (ms / 1e3)
                log("   prefill %d tokens: %.1f ms, %.0f tokens/s" % (args.prompt, ms, tps))
                if out:
                    out.write(json.dumps(dict(engine="hf", model=name, kind="prefill", prompt=args.prompt, ms=ms,
                                              tokens_per_s=tps)) + "\n")
                    out.flush()
                for b in batches:
                    if time.perf_counter() - t_start > args.budget_s:
                        log("   decode batch %d: skipped (model budget of %.0f s spent)" % (b, args.budget_s))
                        continue
                    ids = torch.randint(0, cfg.vocab_size, (b, args.prompt), device="cuda", generator=g)
                    res = model(input_ids=ids, use_cache=True)
                    past = res.past_key_values
                    nxt = res.logits[:, -1, :].argmax(-1, keepdim=True)
                    del res
                    step_ms = []
                    for step in range(args.steps + 2):
                        res, ms = timed(torch, lambda: model(input_ids=nxt, past_key_values=past, use_cache=True))
                        past = res.past_key_values
                        nxt = res.logits[:, -1, :].argmax(-1, keepdim=True)
                        del res
                        if step >= 2:
                            step_ms.append(ms)
                    ms = statistics.median(step_ms)
                    log("   decode batch %3d: %.2f ms/step (%.0f tokens/s)" % (b, ms, b / (ms / 1e3)))
                    if out:
                        out.write(json.dumps(dict(engine="hf", model=name, kind="decode", batch=b, ms=ms)) + "\n")
                        out.flush()
                    del past, nxt
                    torch.cuda.empty_cache()
        except Exception as e:
            log("%s: measurement failed: %r" % (name, e))
        del model
        gc.collect()
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
