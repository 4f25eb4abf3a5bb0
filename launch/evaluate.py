"""Evaluate a policy on a benchmark and write JSON + a jsonl of every graded response.

    python -m launch.evaluate --model runs/sft --task arith --method greedy --limit 200
    python -m launch.evaluate --model ckpt --task gsm8k --method maj@8 --out results/gsm8k.json
    python -m launch.evaluate --model ckpt --value ckpt_value --task math500 --method best_of_n@8
    python -m launch.evaluate --task alfworld --split valid_unseen --model expert   (environments)
    python -m launch.evaluate --task ifeval --responses answers.jsonl --out ifeval.json (IFEval)

Math tasks: arith (synthetic), gsm8k (vendored test split), math (needs --data or task.test_path),
math500 (vendored). The JSON holds `accuracy`, `n`, `generated_tokens`, `wall_s` (and the method,
model calls, config); the jsonl beside it (`<out>.responses.jsonl`) holds every prompt, response,
extracted answer and verdict. Interactive tasks (alfworld, nethack) go to `launch.evaluate_envs`,
IFEval (`--responses FILE` or `--model CKPT`) to `launch.evaluate_ifeval`.
Errors (bad model path, unknown task, empty data) print one line and exit 2.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence

__all__ = ["main"]

MATH_TASKS = ("arith", "gsm8k", "math", "math500")
ENV_TASKS = ("alfworld", "nethack")
TEXT_TASKS = ("ifeval",)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m launch.evaluate", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="policy HF checkpoint directory")
    ap.add_argument("--task", required=True, choices=MATH_TASKS + ENV_TASKS + TEXT_TASKS)
    ap.add_argument("--method", default="greedy", help="greedy | maj@k | best_of_n[@n] | beam[@b] | mcts")
    ap.add_argument("--limit", type=int, default=None, help="evaluate the first N problems (arith: N generated)")
    ap.add_argument("--value", help="value-model directory (best_of_n, beam, mcts)")
    ap.add_argument("--data", help="test jsonl (sets task.test_path)")
    ap.add_argument("--config", help="YAML preset for generator/prompt/search settings")
    ap.add_argument("--out", help="result JSON path (default runs/eval/<model>_<task>_<method>.json)")
    ap.add_argument("--max-tokens", type=int, default=None, help="new tokens per response")
    ap.add_argument("--temperature", type=float, default=None, help="sampling temperature for sampling methods")
    ap.add_argument("--backend", choices=["hf", "vllm"], default=None, help="generation backend")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("overrides", nargs="*", help="config overrides key=value")
    return ap


def _default_max_tokens(task: str) -> int:
    return {"arith": 64, "gsm8k": 512, "math": 1024, "math500": 1024}[task]


def _setup(args):
    """(cfg, problems) after applying CLI flags to the config."""
    from envs.tasks import load_problems
    from launch.config import load_config

    overrides = [f"task.name={args.task}", f"seed={args.seed}"]
    if args.data:
        overrides.append(f"task.test_path={args.data}")
    if args.backend:
        overrides.append(f"generator.backend={args.backend}")
    cfg = load_config(args.config, overrides + list(args.overrides))
    limit = args.limit
    if args.task == "arith" and limit is None:
        limit = cfg.eval.num_problems
    problems = load_problems(cfg.task, "test", limit)
    return cfg, problems


def _render_prompts(cfg, problems, tokenizer) -> list[str]:
    """Prompts for `problems`; MATH tasks ask for a boxed answer unless the config set a system text."""
    import dataclasses

    from reasoner.templates import GSM8K_SYSTEM, MATH_SYSTEM, render_prompt
    prompt = cfg.prompt
    if cfg.task.name.value in ("math", "math500") and prompt.system == GSM8K_SYSTEM:
        prompt = dataclasses.replace(prompt, system=MATH_SYSTEM)
    return [render_prompt(p.question, prompt, tokenizer) for p in problems]


def _write(out: Path, result, payload: dict) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2))
    responses = out.with_suffix(".responses.jsonl")
    with open(responses, "w", encoding="utf-8") as f:
        for r in result.records:
            f.write(json.dumps({"problem_id": r.problem_id, "prompt": r.prompt, "response": r.response,
                                "extracted": r.extracted, "reference": r.reference, "correct": r.correct,
                                "generated_tokens": r.generated_tokens}, ensure_ascii=False) + "\n")
    return responses


def run(args) -> dict:
    from launch.evaluation import evaluate_problems, parse_method
    from launch.config import api_key_of
    from reasoner.loading import build_generator, load_tokenizer

    parse_method(args.method)  # fail fast on a bad method name
    cfg, problems = _setup(args)
    generator = build_generator(cfg.generator, args.model, api_key=api_key_of(cfg.generator))
    tokenizer = getattr(generator, "tokenizer", None) or load_tokenizer(args.model)
    value_fn = None
    if args.value:
        from reasoner.loading import resolve_device
        from reasoner.value_model import ValueModel
        from search.evaluators import LearnedValue
        value_fn = LearnedValue(ValueModel.from_pretrained(args.value, device=resolve_device(cfg.generator.device)))
    prompts = _render_prompts(cfg, problems, tokenizer)
    max_tokens = args.max_tokens or _default_max_tokens(args.task)
    temperature = cfg.eval.temperature if args.temperature is None else args.temperature
    result = evaluate_problems(generator, problems, prompts, args.method, temperature=temperature,
                               max_tokens=max_tokens, seed=args.seed, value_fn=value_fn,
                               step_format=cfg.steps)
    payload = {**result.summary(), "task": args.task, "model": str(args.model), "value": args.value,
               "max_tokens": max_tokens, "temperature": temperature if args.method != "greedy" else 0.0,
               "backend": cfg.generator.backend.value, "seed": args.seed,
               "finished_at": time.strftime("%Y-%m-%d %H:%M:%S")}
    out = Path(args.out) if args.out else Path("runs/eval") / (
        f"{Path(args.model).name}_{args.task}_{args.method.replace('@', '_at_')}.json")
    responses = _write(out, result, payload)
    print(f"{'task':<10} {'method':<14} {'n':>6} {'accuracy':>9} {'gen_tokens':>11} {'wall_s':>8}")
    print(f"{args.task:<10} {args.method:<14} {result.n:>6} {result.accuracy:>9.3f} "
          f"{result.generated_tokens:>11} {result.wall_s:>8.1f}")
    print(f"wrote {out} and {responses}")
    return payload


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--task")
    if pre.parse_known_args(argv)[0].task in ENV_TASKS:
        from launch import evaluate_envs
        return evaluate_envs.main(argv)
    if pre.parse_known_args(argv)[0].task in TEXT_TASKS:
        from launch import evaluate_ifeval
        return evaluate_ifeval.main(argv)
    return run_cli(run, _parser().parse_args(argv))


def run_cli(run_fn, args) -> int:
    """Pin threads, seed, run `run_fn(args)`; a bad input prints one line and returns 2."""
    from launch.seeding import pin_threads, seed_everything
    pin_threads()
    seed_everything(args.seed)
    from envs.base import TaskError
    from launch.config import ConfigError
    from reasoner.loading import CheckpointError
    try:
        run_fn(args)
    except (TaskError, ConfigError, CheckpointError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
