"""IFEval evaluation: score given responses, or generate them with a model and score them.

    python -m launch.evaluate --task ifeval --responses answers.jsonl --out ifeval.json
    python -m launch.evaluate --task ifeval --model CKPT [--limit N] [--method refine@k] --out ifeval.json

`--responses` takes one JSON object per line, `{"key": <IFEval key>, "response": "..."}`, and
scores exactly those prompts with lm-eval's IFEval checkers (`envs.ifeval`), so any system's
outputs can be scored with no model. `--model` answers the 541 vendored prompts (or the first
`--limit`) greedily with the generator of `--config` (chat template with no system message for
chat checkpoints) and scores them.

OUT holds `prompt_strict`, `prompt_loose`, `instruction_strict`, `instruction_loose` (P(S), P(L),
I(S), I(L) of IFEval and SPaR's tables), `average` (their mean), `per_type` (per instruction id:
n, strict, loose), `n_prompts`, `n_instructions`; `<out>.responses.jsonl` beside it holds every
response with its per-instruction verdicts. Errors print one line and exit 2.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence

__all__ = ["main", "read_responses", "score_and_write"]


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m launch.evaluate --task ifeval",
                                 description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", required=True, choices=["ifeval"])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--responses", help='jsonl of {"key", "response"} to score (no model)')
    src.add_argument("--model", help="policy HF checkpoint directory to generate responses with")
    ap.add_argument("--data", help="IFEval-format jsonl (default: the vendored 541 prompts)")
    ap.add_argument("--limit", type=int, default=None, help="first N prompts (with --model)")
    ap.add_argument("--config", help="YAML preset for generator/prompt settings (with --model)")
    ap.add_argument("--max-tokens", type=int, default=1024, help="new tokens per response (with --model)")
    ap.add_argument("--backend", choices=["hf", "vllm"], default=None, help="generation backend (with --model)")
    ap.add_argument("--out", required=True, help="result JSON path")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("overrides", nargs="*", help="config overrides key=value (with --model)")
    return ap


def read_responses(path: str | Path, prompts) -> tuple[list, list[str]]:
    """(prompts, responses) for the keys in `path`, in the IFEval file's order.

    Raises:
        ValueError: unreadable line, missing field, unknown or repeated key, or no rows.
    """
    from envs.base import TaskError
    path = Path(path)
    if not path.is_file():
        raise TaskError(f"ifeval: no such responses file {path}")
    by_key = {str(p.key): p for p in prompts}
    got: dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                key, response = str(row["key"]), row["response"]
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{path}:{n}: expected {{\"key\", \"response\"}} ({e})") from e
            if not isinstance(response, str):
                raise ValueError(f"{path}:{n}: response must be a string")
            if key not in by_key:
                raise ValueError(f"{path}:{n}: key {key} is not an IFEval prompt key")
            if key in got:
                raise ValueError(f"{path}:{n}: key {key} appears twice")
            got[key] = response
    if not got:
        raise ValueError(f"{path}: no responses")
    chosen = [p for p in prompts if str(p.key) in got]
    return chosen, [got[str(p.key)] for p in chosen]


def score_and_write(prompts, responses: list[str], out: Path, extra: dict | None = None) -> dict:
    """Score with `envs.ifeval.score_responses`, write OUT and `<out>.responses.jsonl`."""
    from envs.ifeval import score_responses
    res = score_responses(prompts, responses)
    verdicts = res.pop("verdicts")
    payload = {**res, **(extra or {}), "finished_at": time.strftime("%Y-%m-%d %H:%M:%S")}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2) + "\n")
    with open(out.with_suffix(".responses.jsonl"), "w", encoding="utf-8") as f:
        for p, r, v in zip(prompts, responses, verdicts):
            f.write(json.dumps({"key": p.key, "prompt": p.prompt, "response": r,
                                "instruction_id_list": list(p.instruction_id_list),
                                "strict": list(v.strict), "loose": list(v.loose)}, ensure_ascii=False) + "\n")
    print(f"{'n':>5} {'P(S)':>7} {'I(S)':>7} {'P(L)':>7} {'I(L)':>7} {'avg':>7}")
    print(f"{res['n_prompts']:>5} {res['prompt_strict']:>7.3f} {res['instruction_strict']:>7.3f} "
          f"{res['prompt_loose']:>7.3f} {res['instruction_loose']:>7.3f} {res['average']:>7.3f}")
    print(f"wrote {out}")
    return payload


def _generate(args, prompts) -> tuple[list[str], dict]:
    """Greedy responses of `args.model` to `prompts`, and generation facts for the JSON."""
    import dataclasses

    from launch.config import load_config
    from reasoner.generation import SamplingParams
    from reasoner.loading import build_generator, load_tokenizer
    from reasoner.templates import PromptStyle, render_prompt

    overrides = [f"seed={args.seed}"] + ([f"generator.backend={args.backend}"] if args.backend else [])
    cfg = load_config(args.config, overrides + list(args.overrides))
    generator = build_generator(cfg.generator, args.model)
    tokenizer = getattr(generator, "tokenizer", None) or load_tokenizer(args.model)
    prompt_cfg = cfg.prompt
    if prompt_cfg.style == PromptStyle.CHAT:
        prompt_cfg = dataclasses.replace(prompt_cfg, system="")   # IFEval: the user turn only
    texts = [render_prompt(p.prompt, prompt_cfg, tokenizer) for p in prompts]
    t0 = time.perf_counter()
    outs = generator.generate(texts, SamplingParams(n=1, max_tokens=args.max_tokens, temperature=0.0))
    responses = [o[0].text for o in outs]
    facts = {"model": str(args.model), "method": "greedy", "max_tokens": args.max_tokens,
             "backend": cfg.generator.backend.value, "generated_tokens": sum(o[0].num_tokens for o in outs),
             "wall_s": round(time.perf_counter() - t0, 2)}
    return responses, facts


def run(args) -> dict:
    from envs.ifeval import load_ifeval
    prompts = load_ifeval(args.data)
    if args.responses:
        prompts, responses = read_responses(args.responses, prompts)
        extra = {"responses": str(args.responses)}
    else:
        if args.limit is not None:
            if args.limit < 1:
                raise ValueError("--limit must be >= 1")
            prompts = prompts[:args.limit]
        responses, extra = _generate(args, prompts)
    return score_and_write(prompts, responses, Path(args.out), {"task": "ifeval", **extra})


def main(argv: Sequence[str] | None = None) -> int:
    from launch.evaluate import run_cli
    return run_cli(run, _parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
