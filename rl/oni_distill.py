"""The embedded default's labeller: a tiny LM distilled from the heuristic annotator.

A real LLM annotator (Llama-3.1-8B in ONI) labels ~0.2 messages/s on our 2 CPU cores, while the
envs produce 10-50 new messages/s, so with no GPU the labels would never catch up. The embedded
default therefore labels with a tiny causal LM (a few hundred thousand parameters) served through
the same `Generator` path (HF on CPU, vLLM, or any OpenAI-compatible endpoint for a real model):
it reads ONI's prompt (`rl.oni_labels.build_prompt`, knowledge-free variant) and answers
"Analysis: ...\\nLabel: <code word>". It is trained by supervised fine-tuning to reproduce
`rl.oni_labels.heuristic_label`, a documented rule list (items, gold, stairs, level feelings,
kills, level-ups, doors that open -> helpful). So on CPU the "LLM's" judgement is our rule
list's, learned and generalised by a tiny LM: the machinery is ONI's, the knowledge is not.

Training data: the vendored `MESSAGES` (typical NetHack/MiniHack messages, both kinds) plus
messages met by random play in the task being trained (passed in), each labelled by the rules.
The tokenizer is word-level over the prompt's words and the corpus (unknown words -> <unk>).
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from rl.oni_labels import LabelGoal, build_prompt, distillation_examples, heuristic_label

__all__ = ["DistillConfig", "MESSAGES", "build_labeller_tokenizer", "distill_labeller"]

_MONSTERS = ("newt", "jackal", "grid bug", "kobold", "sewer rat", "lichen", "goblin", "fox", "gnome lord")
_ITEMS = ("a key named The Master Key of Thievery", "a wand of digging", "a uncursed ring mail",
          "2 food rations", "a potion of healing", "an apple", "a dagger", "a scroll labeled FOOBIE BLETCH",
          "a blue gem", "3 uncursed daggers", "a ring", "an amulet", "a skeleton key", "a lamp", "a boulder")
MESSAGES: tuple[str, ...] = (
    "", "It's a wall.", "It's solid stone.", "The door is closed.", "This door is locked.",
    "You miss the {m}.", "The {m} misses!", "The {m} bites!", "The {m} hits!", "You hit the {m}.",
    "You kill the {m}!", "You destroy the {m}!", "The {m} is killed!", "Welcome to experience level {n}.",
    "You see here {i}.", "{l} - {i}.", "$ - {n} gold pieces.", "You see here {n} gold pieces.",
    "There is a staircase down here.", "There is a staircase up here.", "You descend the stairs.",
    "You hear someone counting money.", "You hear the footsteps of a guard on patrol.",
    "You hear bubbling water.", "You have a sad feeling for a moment, then it passes.",
    "Things that are here:", "There are several objects here.", "The door opens.", "This door is locked.",
    "You unlock the door.", "Never mind.", "In what direction?", "You are lucky!  Full moon tonight.",
    "Hello Agent, welcome to NetHack!  You are a neutral male human Caveman.", "You swap places with your kitten.",
    "You stop.  Your kitten is in the way.", "You cannot pass through the bars.", "There is a doorway here.",
    "This apple is delicious!", "You finish eating the food ration.", "You feel hungry.",
    "Really attack the {m}?", "You are beginning to feel weak.", "You hear a door open.",
    "There is a fountain here.", "You see no objects here.", "What do you want to eat? [f or ?*]",
    "The {m} turns to flee.", "You displace your little dog.", "Unknown command ' '.",
)


def _expand(template: str, rng: random.Random) -> str:
    return (template.replace("{m}", rng.choice(_MONSTERS)).replace("{i}", rng.choice(_ITEMS))
            .replace("{n}", str(rng.randint(2, 99))).replace("{l}", rng.choice("abcdefghijklmnop")))


def _corpus(extra: Sequence[str], seed: int, copies: int = 6) -> list[str]:
    rng = random.Random(seed)
    out = {_expand(t, rng) for t in MESSAGES for _ in range(copies)}
    return sorted(out | set(extra))


@dataclass
class DistillConfig:
    """Training the tiny labeller LM (the `oni.distill` block)."""
    steps: int = 300
    """SFT optimizer steps."""
    batch_size: int = 16
    """(prompt, answer) pairs per step."""
    lr: float = 3e-3
    """Peak learning rate."""
    hidden_size: int = 64
    """Width of the tiny LM (2 layers, 4 heads)."""
    env_messages_steps: int = 3000
    """Random-play steps in the training task whose messages join the corpus."""

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.hidden_size % 4:
            raise ValueError("oni.distill: steps, batch_size >= 1 and hidden_size divisible by 4")


def build_labeller_tokenizer(messages: Sequence[str], goal: LabelGoal = LabelGoal.SCORE):
    """Word-level tokenizer over the prompt's and the messages' words (and their symbols)."""
    from reasoner.tokenizer import build_word_tokenizer
    texts = [build_prompt(m, goal, knowledge=False) for m in ("",)] + list(messages)
    texts += [heuristic_label(m, goal)[1] for m in messages] + ["Analysis: Label: ALPHA BRAVO"]
    words = {w for t in texts for w in re.findall(r"[A-Za-z]+", t)}
    symbols = {s for t in texts for s in re.findall(r"[^A-Za-z0-9\s]", t)}
    return build_word_tokenizer(sorted(words), extra_tokens=sorted(symbols))


def distill_labeller(out_dir: str | Path, env_messages: Sequence[str] = (), *, cfg: DistillConfig | None = None,
                     goal: LabelGoal = LabelGoal.SCORE, seed: int = 0, progress: bool = False) -> dict:
    """Train the tiny labeller LM on heuristic labels and save it as an HF checkpoint in `out_dir`.

    Returns:
        {"examples", "positive", "steps", "final_loss", "seconds", "prompt_tokens"}.
    """
    from reasoner.tiny import TinyModelConfig, build_tiny_model
    from rl.learners.sft import SFTConfig, SFTLearner
    cfg = cfg or DistillConfig()
    messages = _corpus(env_messages, seed)
    examples = distillation_examples(messages, goal)
    tok = build_labeller_tokenizer(messages, goal)
    longest = max(len(tok(p)["input_ids"]) + len(tok(a)["input_ids"]) for p, a in examples) + 2
    tiny = TinyModelConfig(hidden_size=cfg.hidden_size, num_layers=2, num_heads=4, num_kv_heads=4,
                           intermediate_size=4 * cfg.hidden_size, max_position_embeddings=max(512, longest))
    model = build_tiny_model(tiny, tok, seed=seed)
    positives = [e for e in examples if e[1].rstrip().endswith("ALPHA")]
    negatives = [e for e in examples if not e[1].rstrip().endswith("ALPHA")]

    def batches(step: int) -> list[tuple[str, str]]:   # balanced: half positive, half negative
        r = random.Random(seed * 100003 + step)
        half = cfg.batch_size // 2
        return ([r.choice(positives) for _ in range(half)] +
                [r.choice(negatives) for _ in range(cfg.batch_size - half)])

    sft = SFTConfig(steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr, warmup_steps=min(20, cfg.steps),
                    max_len=longest, log_every=50, save_every=0, device="cpu")
    info = SFTLearner(model, tok, sft, batches).fit(state_path=None, progress=progress)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return {"examples": len(examples), "positive": len(positives), "steps": info["steps"],
            "final_loss": info["final_loss"], "seconds": round(info["seconds"], 1), "prompt_tokens": longest}
