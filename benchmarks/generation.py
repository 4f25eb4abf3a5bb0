"""Generation throughput of the HF and vLLM backends on the MCTS shape (many continuations of shared prefixes).

    python benchmarks/generation.py --quick                 # CPU, tiny policy, about a minute
    python benchmarks/generation.py                         # CPU, more rounds and repeats
    python benchmarks/generation.py --device cuda           # GPU: HF, and vLLM where installed
    python benchmarks/generation.py --device cuda --synthetic-hidden 2048 --synthetic-layers 16

Workload at batch B (B sequences per `generate` call, as one round of batched MCTS expansion):
P = max(1, B // 4) arithmetic questions are the leaves, each sampled n = B // P times (n = 4 for
B >= 4) with the step stop string "\\n", temperature 1 and 24 new tokens at most. After every
call each leaf grows by its first sample's step (MCTS extends a leaf by one step per call), for
`--rounds` rounds, so consecutive calls share all but the newest step of every prompt. Both
backends run the same schedule, in one process, on the same checkpoint (float32 on CPU; HF first,
then vLLM with its engine core in-process). Each batch size starts from empty prefix caches.

Reported per backend and batch (rows of benchmarks/results/generation.json, which keeps the rows
of other devices; `{"rows": [{"backend", "device", "batch", "tokens_per_s",
"prefix_cache_hit_rate"}]}`):
- tokens_per_s: generated tokens (stop tokens included) over the wall seconds of the calls.
- prefix_cache_hit_rate: prompt tokens served from the prefix cache over prompt tokens of the
  distinct prompts sent (HF: `reasoner.kv_cache.PrefixKVCache`, reused across calls; vLLM:
  `RequestOutput.num_cached_tokens`, whole 32-token KV blocks on CPU).
On CUDA the script also prints, and stores under "bandwidth", the share of the memory-bandwidth
limit reached: weight bytes x decode steps/s over the card's bandwidth (decode steps/s taken as
tokens/s / B, which ignores sequences that finished early, so the share is a lower bound). Batched
decoding of a small model is launch-bound, so `--synthetic-*` builds a larger random Llama (with the
word tokenizer) to measure that regime.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")   # engine core in this process
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.results_path import results_path  # noqa: E402
DEFAULT_MODEL = ROOT / "tests" / "data" / "tiny_arith_policy"
# peak memory bandwidth in GB/s, by a substring of torch.cuda.get_device_name() (vendor data sheets)
BANDWIDTH_GBS = [("H200", 4800), ("H100 PCIe", 2000), ("H100", 3350), ("A100-SXM4-80GB", 2039),
                 ("A100 80GB PCIe", 1935), ("A100", 1555), ("L40S", 864), ("L4", 300), ("A10G", 600),
                 ("RTX 4090", 1008), ("V100", 900), ("T4", 320)]


def bandwidth_share(weight_bytes: int, tokens_per_s: float, batch: int, bandwidth_gbs: float) -> float:
    """Share of the bandwidth limit: weights read once per decode step, steps/s = tokens/s / batch."""
    return weight_bytes * (tokens_per_s / batch) / (bandwidth_gbs * 1e9)


def card_bandwidth_gbs(name: str) -> float | None:
    return next((bw for key, bw in BANDWIDTH_GBS if key in name), None)


def _prompts(batch: int) -> tuple[list[str], int]:
    from envs.arith import load_arith
    from reasoner.templates import PromptConfig, render_prompt
    leaves = max(1, batch // 4)
    return [render_prompt(p.question, PromptConfig()) for p in load_arith("test", leaves)], batch // leaves


def run_schedule(gen, batch: int, rounds: int, repeats: int) -> tuple[float, int, float]:
    """(seconds in generate, generated tokens, seconds) of `repeats` x `rounds` MCTS-shaped calls."""
    from reasoner.generation import FinishReason, SamplingParams
    seconds, tokens = 0.0, 0
    for rep in range(repeats):
        prompts, n = _prompts(batch)
        for r in range(rounds):
            params = SamplingParams(n=n, max_tokens=24, temperature=1.0, stop=("\n",), seed=1000 * rep + r)
            t0 = time.perf_counter()
            out = gen.generate(prompts, params)
            seconds += time.perf_counter() - t0
            tokens += sum(c.num_tokens for row in out for c in row)
            prompts = [p + row[0].text + row[0].stop_reason if row[0].finish_reason == FinishReason.STOP else p
                       for p, row in zip(prompts, out)]
    return seconds, tokens, tokens / seconds


def _hf(model_dir: str, device: str):
    from reasoner.generation import GeneratorConfig
    from reasoner.hf_backend import HFGenerator
    from reasoner.loading import load_policy
    model, tok = load_policy(model_dir, device, "float32" if device == "cpu" else "bfloat16")
    gen = HFGenerator(model, tok, GeneratorConfig(seed=0, max_batch_size=512))

    def cache() -> tuple[int, int]:
        return gen.prefix_cache.hits, gen.prefix_cache.queries

    def reset() -> None:
        gen.prefix_cache.clear()
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    return gen, cache, reset, weight_bytes


def _vllm(model_dir: str, device: str):
    from reasoner.generation import GeneratorConfig
    from reasoner.vllm_backend import VLLMGenerator
    cfg = GeneratorConfig(seed=0, max_model_len=512, dtype="float32" if device == "cpu" else "bfloat16",
                          gpu_memory_utilization=0.5)
    gen = VLLMGenerator(model_dir, cfg)

    def cache() -> tuple[int, int]:
        return gen.prefix_cache_hits, gen.prefix_cache_queries
    return gen, cache, gen.llm.reset_prefix_cache, _weight_bytes(model_dir, 4 if device == "cpu" else 2)


def _weight_bytes(model_dir: str, bytes_per_param: int) -> int:
    """Parameters stored in the checkpoint (a tied output head is stored once) x bytes per parameter."""
    from math import prod

    from safetensors import safe_open
    total = 0
    for f in Path(model_dir).glob("*.safetensors"):
        with safe_open(str(f), framework="pt") as fh:
            total += sum(prod(fh.get_slice(k).get_shape()) for k in fh.keys())
    return total * bytes_per_param


def bench_backend(name: str, model_dir: str, device: str, batches, rounds: int, repeats: int) -> list[dict]:
    from reasoner.generation import SamplingParams
    build = _hf if name == "hf" else _vllm
    gen, cache, reset, weight_bytes = build(model_dir, device)
    gen.generate(_prompts(4)[0], SamplingParams(n=4, max_tokens=8, seed=0))   # warm-up
    rows = []
    for b in batches:
        reset()
        hits0, queries0 = cache()
        _, tokens, tps = run_schedule(gen, b, rounds, repeats)
        hits, queries = cache()
        rate = (hits - hits0) / (queries - queries0) if queries > queries0 else 0.0
        rows.append({"backend": name, "device": device, "batch": b, "tokens_per_s": round(tps, 1),
                     "prefix_cache_hit_rate": round(rate, 3), "_tokens": tokens, "_weight_bytes": weight_bytes})
    if name == "vllm":
        gen.close()
    return rows


def _synthetic_model(hidden: int, layers: int, out: Path) -> str:
    from envs.arith import vocabulary_words
    from reasoner.tiny import TinyModelConfig, build_tiny_model
    from reasoner.tokenizer import build_word_tokenizer
    tok = build_word_tokenizer(vocabulary_words())
    cfg = TinyModelConfig(hidden_size=hidden, num_layers=layers, num_heads=hidden // 128,
                          num_kv_heads=max(1, hidden // 512), intermediate_size=4 * hidden)
    build_tiny_model(cfg, tok, seed=0).save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


def _report(rows: list[dict], args, model: str, batches, rounds: int, repeats: int, load: float) -> None:
    """Print the bandwidth shares (CUDA) and merge the rows into the results JSON (other devices kept)."""
    import torch
    bandwidth = []
    if args.device == "cuda":
        name = torch.cuda.get_device_name()
        gbs = args.bandwidth_gbs or card_bandwidth_gbs(name)
        for r in rows:
            if gbs:
                share = bandwidth_share(r["_weight_bytes"], r["tokens_per_s"], r["batch"], gbs)
                bandwidth.append({"backend": r["backend"], "batch": r["batch"], "weight_bytes": r["_weight_bytes"],
                                  "steps_per_s": round(r["tokens_per_s"] / r["batch"], 1), "share": round(share, 4)})
                print(f"{r['backend']:<8} batch {r['batch']:>3}: {share:.1%} of the {gbs:.0f} GB/s limit of {name} "
                      f"({r['_weight_bytes'] / 1e6:.1f} MB of weights per step)")
            else:
                print(f"unknown bandwidth of {name}: pass --bandwidth-gbs")
    out_path = results_path("generation", quick=args.quick, out=args.out)
    old = json.loads(out_path.read_text()) if out_path.exists() else {}
    clean = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
    result = {
        "rows": [r for r in old.get("rows", []) if r.get("device") != args.device] + clean,
        "config": {**old.get("config", {}), args.device: {
            "model": os.path.relpath(model, ROOT) if not args.synthetic_hidden else
            f"synthetic llama hidden {args.synthetic_hidden} x {args.synthetic_layers} layers",
            "batches": batches, "rounds": rounds, "repeats": repeats, "max_step_tokens": 24, "samples_per_leaf": 4,
            "quick": args.quick, "threads": torch.get_num_threads(), "load_average_1min_at_start": round(load, 2)}},
        "machine": {**old.get("machine", {}), args.device: {
            "python": platform.python_version(), "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "gpu": torch.cuda.get_device_name() if args.device == "cuda" else None}},
    }
    if bandwidth or "bandwidth" in old:
        result["bandwidth"] = bandwidth or old["bandwidth"]
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out_path}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="short run (about a minute on CPU)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--model", default=str(DEFAULT_MODEL), help="HF checkpoint directory")
    ap.add_argument("--batches", default="1,16,64", help="comma-separated batch sizes")
    ap.add_argument("--rounds", type=int, default=None, help="calls per schedule (default 8, --quick 6)")
    ap.add_argument("--repeats", type=int, default=None, help="schedules per batch (default 5, --quick 2)")
    ap.add_argument("--backends", default="hf,vllm")
    ap.add_argument("--synthetic-hidden", type=int, default=0, help="cuda: random Llama of this width instead of --model")
    ap.add_argument("--synthetic-layers", type=int, default=16)
    ap.add_argument("--bandwidth-gbs", type=float, default=None, help="cuda: card bandwidth (default: by name)")
    ap.add_argument("--out", default=None, help="JSON output (default: results/generation.json; --quick: a temp file)")
    args = ap.parse_args(argv)
    if args.synthetic_hidden and args.synthetic_hidden % 128:
        ap.error("--synthetic-hidden must be a multiple of 128 (heads of 128)")
    import torch
    torch.set_num_threads(1)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("--device cuda: no CUDA device visible", file=sys.stderr)
        return 2
    batches = [int(b) for b in args.batches.split(",")]
    rounds, repeats = args.rounds or (6 if args.quick else 8), args.repeats or (2 if args.quick else 5)
    backends = args.backends.split(",")
    if "vllm" in backends:
        try:
            import vllm  # noqa: F401
        except ImportError as e:
            print(f"vllm not importable ({e}): HF only", file=sys.stderr)
            backends = [b for b in backends if b != "vllm"]
    tmp = tempfile.TemporaryDirectory(prefix="bench_gen_")
    model = args.model
    if args.synthetic_hidden:
        model = _synthetic_model(args.synthetic_hidden, args.synthetic_layers, Path(tmp.name))
    load = os.getloadavg()[0]
    rows = [r for b in backends for r in bench_backend(b, model, args.device, batches, rounds, repeats)]
    print(f"{'backend':<8} {'device':<6} {'batch':>5} {'tokens':>7} {'tokens/s':>9} {'prefix hit':>10}")
    for r in rows:
        print(f"{r['backend']:<8} {r['device']:<6} {r['batch']:>5} {r['_tokens']:>7} {r['tokens_per_s']:>9.1f} "
              f"{r['prefix_cache_hit_rate']:>10.3f}")
    _report(rows, args, model, batches, rounds, repeats, load)
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
