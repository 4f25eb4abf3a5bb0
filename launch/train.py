"""Train the policy (and value model) with step-DPO or OREO from record files.

    python -m launch.train --algo step_dpo --data pairs.jsonl --policy runs/sft --out runs/dpo
    python -m launch.train --algo oreo --data trajs.parquet --policy runs/sft --out runs/oreo \\
        --steps 200 --lr 1e-4 --set variant=step --set value_lora.enabled=true

`--data` holds `StepPair` records (step_dpo) or `Trajectory` records (oreo), as written by
`reasoner.records.write_records`. The reference model is a frozen copy of `--policy` (or `--ref`);
the OREO critic is `--value` (a `ValueModel` directory) or built fresh from `--policy`.
Outputs: OUT/policy (HF checkpoint), OUT/value (oreo), OUT/tensorboard, OUT/state (resumable).
Rerunning the same command resumes from OUT/state; a finished run just rewrites its checkpoints.
Every flag maps to a field of `StepDPOConfig` / `OREOConfig`; `--set key=value` reaches any field
(nested with dots, e.g. `policy_lora.rank=16`).
"""
from __future__ import annotations

import argparse
import dataclasses
import enum
import json
import sys
import typing
from pathlib import Path
from typing import Any, Sequence

__all__ = ["main", "build_config"]

# flag -> config field, per algorithm (flags left unset keep the config defaults)
_FLAG_FIELDS = {
    "step_dpo": {"steps": "max_steps", "epochs": "epochs", "lr": "lr", "beta": "beta",
                 "batch_size": "batch_size", "grad_accum": "grad_accum", "max_len": "max_len",
                 "device": "device", "dtype": "dtype", "seed": "seed", "save_every": "save_every",
                 "lora": "lora.enabled"},
    "oreo": {"steps": "max_steps", "epochs": "epochs", "lr": "policy_lr", "value_lr": "value_lr",
             "beta": "beta", "alpha": "alpha", "variant": "variant", "batch_size": "batch_size",
             "grad_accum": "grad_accum", "max_len": "max_len", "device": "device", "dtype": "dtype",
             "seed": "seed", "save_every": "save_every", "lora": "policy_lora.enabled",
             "value_lora": "value_lora.enabled"},
}


class UsageError(ValueError):
    """Bad command-line input: reported in one line, exit status 2."""


def _config_class(algo: str):
    if algo == "step_dpo":
        from rl.learners.step_dpo import StepDPOConfig
        return StepDPOConfig
    from rl.learners.oreo import OREOConfig
    return OREOConfig


def _parse_value(text: str, tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if tp is bool:
        if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise UsageError(f"expected true/false, got {text!r}")
        return text.lower() in ("true", "1", "yes")
    if origin is tuple:
        return tuple(_parse_value(t, a) for t, a in zip(text.split(","), typing.get_args(tp)))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp(text)
    if tp in (int, float, str):
        return tp(text)
    raise UsageError(f"cannot set a field of type {tp}")


def _set_field(obj: Any, dotted: str, text: str) -> None:
    head, _, rest = dotted.partition(".")
    hints = typing.get_type_hints(type(obj))
    if head not in hints:
        names = ", ".join(f.name for f in dataclasses.fields(obj))
        raise UsageError(f"unknown setting {dotted!r} for {type(obj).__name__} (fields: {names})")
    if rest:
        _set_field(getattr(obj, head), rest, text)
        return
    try:
        setattr(obj, head, _parse_value(text, hints[head]))
    except ValueError as e:
        raise UsageError(f"bad value for {dotted}: {e}") from None


def build_config(algo: str, flags: dict[str, Any], sets: Sequence[str]):
    """The learner config: defaults <- flags <- `--set key=value` overrides, then validated."""
    cfg = _config_class(algo)()
    items = [(_FLAG_FIELDS[algo][k], str(v)) for k, v in flags.items() if v is not None and v is not False]
    for s in sets:
        key, eq, value = s.partition("=")
        if not eq:
            raise UsageError(f"--set expects key=value, got {s!r}")
        items.append((key.strip(), value.strip()))
    for key, value in items:
        _set_field(cfg, key, value)
    for sub in (getattr(cfg, f.name) for f in dataclasses.fields(cfg)):
        if dataclasses.is_dataclass(sub):
            sub.__post_init__()
    cfg.__post_init__()
    return cfg


def _read_data(algo: str, path: str):
    from reasoner.records import RecordError, StepPair, Trajectory, read_records
    kind = StepPair if algo == "step_dpo" else Trajectory
    try:
        records = read_records(path, kind)
    except RecordError as e:
        raise UsageError(str(e)) from None
    if not records:
        raise UsageError(f"{path}: holds no {kind.__name__} records")
    return records


def _check_dir(path: str | None, what: str, marker: str) -> None:
    if path is not None and not (Path(path) / marker).exists():
        raise UsageError(f"{what} {path} is not a checkpoint directory (no {marker})")


def _train(args, cfg, records) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    from launch.seeding import pin_threads, seed_everything
    from reasoner.loading import load_tokenizer, resolve_device, resolve_dtype

    pin_threads()
    seed_everything(cfg.seed)
    compute = resolve_dtype(cfg.dtype, resolve_device(cfg.device))
    lora = cfg.lora.enabled if args.algo == "step_dpo" else cfg.policy_lora.enabled
    tokenizer = load_tokenizer(args.policy)
    # trainable weights in float32 (master weights); frozen weights in the compute dtype
    policy = AutoModelForCausalLM.from_pretrained(args.policy, dtype=compute if lora else torch.float32)
    ref = AutoModelForCausalLM.from_pretrained(args.ref or args.policy, dtype=compute)
    if args.algo == "step_dpo":
        from rl.learners.step_dpo import StepDPOLearner
        learner = StepDPOLearner(policy, ref, tokenizer, cfg)
    else:
        from reasoner.value_model import ValueModel
        from rl.learners.oreo import OREOLearner
        value = (ValueModel.from_pretrained(args.value, tokenizer=tokenizer) if args.value
                 else ValueModel.from_policy(args.policy, tokenizer))
        learner = OREOLearner(policy, ref, value, tokenizer, cfg)
    return learner.fit(records, args.out, progress=not args.quiet)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m launch.train", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--algo", required=True, choices=sorted(_FLAG_FIELDS), help="learner")
    ap.add_argument("--data", required=True, help="StepPair (step_dpo) or Trajectory (oreo) .jsonl/.parquet")
    ap.add_argument("--policy", required=True, help="HF checkpoint to start from")
    ap.add_argument("--out", required=True, help="output directory (resumed if it holds a state)")
    ap.add_argument("--ref", help="frozen reference checkpoint (default: --policy)")
    ap.add_argument("--value", help="oreo: ValueModel directory (default: fresh critic from --policy)")
    for flag, tp in (("steps", int), ("epochs", int), ("lr", float), ("value-lr", float), ("beta", float),
                     ("alpha", float), ("batch-size", int), ("grad-accum", int), ("max-len", int),
                     ("seed", int), ("save-every", int)):
        ap.add_argument(f"--{flag}", type=tp)
    ap.add_argument("--variant", choices=["token", "step", "response"], help="oreo action granularity")
    ap.add_argument("--device", help="auto, cpu, cuda, cuda:N")
    ap.add_argument("--dtype", help="auto, float32, bfloat16")
    ap.add_argument("--lora", action="store_true", help="LoRA on the policy")
    ap.add_argument("--value-lora", action="store_true", help="oreo: LoRA on the critic backbone")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any config field")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    flags = {k: getattr(args, k) for k in ("steps", "epochs", "lr", "value_lr", "beta", "alpha", "variant",
                                           "batch_size", "grad_accum", "max_len", "device", "dtype", "seed",
                                           "save_every", "lora", "value_lora")}
    try:
        unused = [f"--{k.replace('_', '-')}" for k, v in flags.items()
                  if v not in (None, False) and k not in _FLAG_FIELDS[args.algo]]
        if args.algo == "step_dpo" and args.value:
            unused.append("--value")
        if unused:
            raise UsageError(f"{', '.join(unused)} only apply to --algo oreo")
        _check_dir(args.policy, "--policy", "config.json")
        _check_dir(args.ref, "--ref", "config.json")
        _check_dir(args.value, "--value", "value_head.safetensors")
        records = _read_data(args.algo, args.data)   # before torch is imported: bad data fails fast
        cfg = build_config(args.algo, {k: v for k, v in flags.items() if k in _FLAG_FIELDS[args.algo]}, args.set)
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "train_args.json").write_text(json.dumps(vars(args), indent=2) + "\n")
        summary = _train(args, cfg, records)
    except UsageError as e:
        print(f"train: error: {e}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as e:
        print(f"train: error: {e}", file=sys.stderr)
        return 1
    last = ", ".join(f"{k} {v:.4g}" for k, v in list(summary["last"].items())[:3])
    print(f"wrote {args.out}: step {summary['steps']} (resumed from {summary['resumed_from']}), "
          f"{summary.get('pairs', summary.get('trajectories'))} records, {summary['skipped']} skipped; {last}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
