"""Train the policy by supervised fine-tuning and write an HF checkpoint.

    python -m launch.train_sft --config configs/arith_tiny.yaml --out runs/sft
    python -m launch.train_sft --config configs/arith_tiny.yaml --out /tmp/sft sft.steps=20
    python -m launch.train_sft --config configs/gsm8k_qwen1.5b.yaml --data train.jsonl --out ckpt/sft

With `model.policy` empty the tiny model of `model.tiny` is built from scratch with a word-level
tokenizer over the synthetic arithmetic vocabulary (the embedded default). With a checkpoint path
it fine-tunes that model on the task's train split (`--data` or `task.train_path`: GSM8K or
MATH-style jsonl). Rerunning the same command after an interruption resumes from OUT/state/.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Sequence

__all__ = ["main", "train_sft"]


def _build_from_scratch(cfg):
    from envs.tasks import TaskName
    from reasoner.tiny import build_tiny_model
    from reasoner.tokenizer import build_word_tokenizer

    name = TaskName(cfg.task.name)
    if name == TaskName.ARITH:
        from envs.arith import vocabulary_words
        tokenizer = build_word_tokenizer(vocabulary_words())
    elif name == TaskName.INSTRUCT:
        from envs.instruct import vocabulary_words
        tokenizer = build_word_tokenizer(vocabulary_words(), extra_tokens=INSTRUCT_SYMBOLS)
    else:
        raise ValueError("training from scratch (model.policy empty) needs task.name=arith or instruct; "
                         "give model.policy=<checkpoint> to fine-tune on other tasks")
    return build_tiny_model(cfg.model.tiny, tokenizer, seed=cfg.seed), tokenizer


INSTRUCT_SYMBOLS = ('"', "[", "]")
"""Symbols of the instruct task beyond the word tokenizer's own (quotes, answer delimiters)."""


def instruct_sft_pairs(cfg, tokenizer) -> list[tuple[str, str]]:
    """SFT mixture of the embedded instruct task (SPaR's SFT stage, actor + refiner in one model).

    `spar.sft_prompts` train prompts give actor examples (prompt -> checker-accepted reference)
    and the bootstrap judgments and minimal-edit refinements of `envs.instruct_bootstrap`, in
    the judge / refine prompt formats of `search.refine` (the `refine` block).
    """
    from envs.instruct_bootstrap import bootstrap_examples
    from envs.tasks import load_instruct_problems
    from reasoner.templates import render_prompt
    from search.refine import judge_prompt, refine_prompt

    problems = load_instruct_problems(cfg.task, "train", cfg.spar.sft_prompts)
    judges, refines = bootstrap_examples(problems, seed=cfg.seed)
    pairs = [(render_prompt(p.question, cfg.prompt, tokenizer), p.reference) for p in problems]
    pairs += [(judge_prompt(j.question, j.response, cfg.refine), j.critique) for j in judges]
    pairs += [(refine_prompt(r.question, r.response, r.critique, cfg.refine), r.refinement) for r in refines]
    return pairs


def _batches(cfg, tokenizer):
    """`batches(step)`: the (prompt, response) pairs of optimizer step `step` (deterministic)."""
    from envs.tasks import TaskName, load_problems
    from reasoner.templates import render_prompt

    n_needed = cfg.sft.steps * cfg.sft.batch_size
    if TaskName(cfg.task.name) == TaskName.INSTRUCT:
        pairs = instruct_sft_pairs(cfg, tokenizer)
        random.Random(cfg.seed).shuffle(pairs)
        bsz = cfg.sft.batch_size
        return lambda step: [pairs[(step * bsz + j) % len(pairs)] for j in range(bsz)]
    if TaskName(cfg.task.name) == TaskName.ARITH:
        problems = load_problems(cfg.task, "train", n_needed)  # fresh problems, no repeats
    else:
        problems = load_problems(cfg.task, "train")
        if not any(p.solution for p in problems):
            raise ValueError(f"{cfg.task.name} train split has no reference solutions to train on")
    order = list(range(len(problems)))
    random.Random(cfg.seed).shuffle(order)
    pairs = [(render_prompt(problems[i].question, cfg.prompt, tokenizer), problems[i].solution) for i in order]
    bsz = cfg.sft.batch_size

    def batches(step: int) -> list[tuple[str, str]]:
        return [pairs[(step * bsz + j) % len(pairs)] for j in range(bsz)]

    return batches


def train_sft(cfg, out: Path, *, show_progress: bool = True) -> dict:
    """Train per `cfg` into `out` (an HF checkpoint directory); resumes from out/state/."""
    from launch.config import to_yaml
    from launch.seeding import seed_everything
    from reasoner.loading import load_policy, resolve_device
    from rl.learners.sft import SFTLearner
    from rl.training import open_writer

    info_path = out / "training_info.json"
    if info_path.exists() and json.loads(info_path.read_text()).get("steps") == cfg.sft.steps:
        print(f"{out} already holds a finished SFT checkpoint; nothing to do")
        return json.loads(info_path.read_text())
    seed_everything(cfg.seed)
    device = resolve_device(cfg.sft.device)
    if cfg.model.policy:
        model, tokenizer = load_policy(cfg.model.policy, device)
    else:
        model, tokenizer = _build_from_scratch(cfg)
        model.to(device)
    batches = _batches(cfg, tokenizer)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sft_config.yaml").write_text(to_yaml(cfg))
    learner = SFTLearner(model, tokenizer, cfg.sft, batches)
    writer = open_writer(out / "tensorboard")
    stats = learner.fit(state_path=out / "state" / "sft_state.pt", writer=writer, progress=show_progress)
    writer.close()
    model.eval()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    info = {**stats, "params": sum(p.numel() for p in model.parameters()), "device": device,
            "policy_version": 0, "reward_convention": "outcome reward R in {0,1}",
            "finished_at": time.strftime("%Y-%m-%d %H:%M:%S")}
    info_path.write_text(json.dumps(info, indent=2))
    return info


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m launch.train_sft", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", help="YAML preset, e.g. configs/arith_tiny.yaml")
    ap.add_argument("--out", required=True, help="output checkpoint directory")
    ap.add_argument("--data", help="train jsonl (sets task.train_path)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    ap.add_argument("overrides", nargs="*", help="config overrides key=value, e.g. sft.steps=200")
    args = ap.parse_args(argv)
    from launch.config import ConfigError, load_config
    from launch.seeding import pin_threads
    pin_threads()
    overrides = list(args.overrides) + ([f"task.train_path={args.data}"] if args.data else [])
    try:
        cfg = load_config(args.config, overrides)
        info = train_sft(cfg, Path(args.out), show_progress=not args.quiet)
    except (ConfigError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    loss = info["final_loss"]
    print(f"wrote {args.out}: {info['steps']} steps, loss {'n/a' if loss is None else f'{loss:.4f}'}, "
          f"{info['tokens_per_s']:.0f} tok/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
