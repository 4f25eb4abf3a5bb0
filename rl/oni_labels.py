"""ONI's message labels: the label store, the annotation prompt and its parse, the labeller, and
the heuristic annotator the embedded default's tiny labeller LM is distilled from.

ONI (Zheng et al., algorithms.md section 5) labels the NetHack message line of observations the
agent meets while it trains: unseen messages go to an LLM annotator asynchronously, its verdicts
(1 = "extremely helpful for progress", 0 = not) are cached by exact message text and distilled
into an intrinsic reward (`rl.oni_rewards`). This module holds the parts that need no Ray:

- `LabelStore`: message -> label table, deduplicated by exact text; a bounded pending queue
  served newest first (ONI's LLM worker takes the newest `llm_batch_size` items, section 5.2);
  a version counter so a learner pulls only the labels added since its last pull; first-seen
  and labelled times for the labeller-lag statistics. Time is passed in (`now`), so the store is
  deterministic in tests; `launch/oni_actors.py` wraps it in a Ray actor.
- `build_prompt` / `parse_label`: ONI's classification prompt structure (section 5.3): a system
  prompt (a helpful, honest judge of NetHack play), the goal, four few-shot examples (level-up,
  hearing money being counted, picking up gold -> helpful; a closed door -> not), the message,
  and an answer in fixed fields (knowledge, one-sentence analysis, label) where the label is one
  of two neutral code words. Parse: the "helpful" code word -> 1, else the "unhelpful" one -> 0,
  else 0 counted as unparsable.
- `Labeller`: prompts -> one batched `Generator.generate` call -> labels. The same class labels
  with vLLM on a GPU, an OpenAI-compatible endpoint, or HF on CPU (`reasoner.generation`).
- `heuristic_label`: a documented rule list standing in for an LLM's judgement on CPU-only
  machines (a real 7B+ annotator labels ~0.2 messages/s on our CPUs against 10-50 new messages/s
  from the envs). Its verdicts train the tiny labeller LM (`distillation_examples`); they are
  *our* rules, not an LLM's, and reported as such.

Where we differ from ONI: goal variants are the default (score), gold-only and combat-only, as in
the paper, but the few-shot analyses are one line each (the tiny LM distils them); the answer
has no free-form knowledge paragraph when `cfg.knowledge` is off (the tiny LM's setting).
"""
from __future__ import annotations

import enum
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Sequence

from reasoner.generation import Generator, SamplingParams

__all__ = ["LabelGoal", "LabellerConfig", "LabelStore", "LabelBatch", "Labeller", "build_prompt",
           "parse_label", "heuristic_label", "HELPFUL_WORD", "UNHELPFUL_WORD", "SYSTEM_PROMPT",
           "FEW_SHOT", "distillation_examples", "HEURISTIC_RULES"]

HELPFUL_WORD = "ALPHA"     # neutral code word for "extremely helpful for progress"
UNHELPFUL_WORD = "BRAVO"   # neutral code word for "unhelpful, neutral or lukewarm"

SYSTEM_PROMPT = ("You are a helpful and honest judge of good gameplay and progress in the game "
                 "NetHack. Always try to help the player progress toward the goal.")

_GOALS = {
    "score": "maximize the score: kill monsters, collect gold and items, and descend the dungeon.",
    "gold": "collect as much gold as possible.",
    "combat": "kill as many monsters as possible.",
}


class LabelGoal(str, enum.Enum):
    """Which play the annotator rewards (ONI's goal variants swap the few-shot labels)."""
    SCORE = "score"
    GOLD = "gold"
    COMBAT = "combat"


# (message, analysis, helpful under score / gold / combat)
FEW_SHOT: tuple[tuple[str, str, dict[str, int]], ...] = (
    ("Welcome to experience level 2.", "the player grew stronger by gaining a level.",
     {"score": 1, "gold": 0, "combat": 1}),
    ("You hear someone counting money.", "there is gold on this level to collect.",
     {"score": 1, "gold": 1, "combat": 0}),
    ("$ - 12 gold pieces.", "the player picked up gold.",
     {"score": 1, "gold": 1, "combat": 0}),
    ("The door is closed.", "a closed door does not help progress.",
     {"score": 0, "gold": 0, "combat": 0}),
)


@dataclass
class LabellerConfig:
    """The LLM annotator (the `oni.labeller` block)."""
    goal: LabelGoal = LabelGoal.SCORE
    """What the annotator rewards: score (default), gold or combat."""
    knowledge: bool = True
    """Ask for a knowledge paragraph before the analysis (ONI's prompt; off for the tiny LM)."""
    batch_size: int = 100
    """Messages per labelling call: the newest pending ones (ONI's llm_batch_size)."""
    max_pending: int = 10000
    """Bound of the pending queue; the oldest unlabelled messages are dropped beyond it."""
    temperature: float = 0.1
    """Sampling temperature (ONI: 0.1)."""
    max_tokens: int = 512
    """New tokens per answer (ONI: 4096 for Llama-3; the tiny LM needs ~16)."""
    idle_sleep_s: float = 0.5
    """How long the labelling loop waits when nothing is pending (ONI: 5 s)."""
    model: str = ""
    """Labeller checkpoint, endpoint model name, or "" = distil the tiny LM into the run directory."""

    def __post_init__(self) -> None:
        self.goal = LabelGoal(self.goal)
        if self.batch_size < 1 or self.max_pending < 1 or self.max_tokens < 1:
            raise ValueError("oni.labeller.batch_size, max_pending and max_tokens must be >= 1")


# ------------------------------------------------------------------------------ prompt and parse
def _answer(analysis: str, label: int, knowledge: bool) -> str:
    lines = (["Knowledge: NetHack rewards progress through the dungeon."] if knowledge else [])
    lines += [f"Analysis: {analysis}", f"Label: {HELPFUL_WORD if label else UNHELPFUL_WORD}"]
    return "\n".join(lines)


def build_prompt(message: str, goal: LabelGoal = LabelGoal.SCORE, *, knowledge: bool = True) -> str:
    """ONI's classification prompt for one message (plain text; see the module docstring).

    The shared part (system prompt, goal, instructions, examples) comes first and is identical
    for every message, so prefix caching (vLLM, the HF backend) computes it once.
    """
    goal = LabelGoal(goal)
    fields = ("Knowledge (what you know about NetHack and the goal), " if knowledge else "")
    head = (f"{SYSTEM_PROMPT}\n\nThe player's goal is to {_GOALS[goal.value]}\n"
            f"Judge the game message below. Answer with {fields}Analysis (one sentence) and "
            f"Label: {HELPFUL_WORD} if the message is extremely helpful for progress toward the "
            f"goal, {UNHELPFUL_WORD} if it is unhelpful, neutral or lukewarm.\n\n")
    shots = "".join(f'Message: "{m}"\n{_answer(a, lab[goal.value], knowledge)}\n\n' for m, a, lab in FEW_SHOT)
    return f"{head}{shots}Message: \"{message}\"\n"


def parse_label(text: str) -> int | None:
    """1 if the helpful code word occurs, else 0 if the unhelpful one does, else None (unparsable)."""
    if HELPFUL_WORD in text:
        return 1
    if UNHELPFUL_WORD in text:
        return 0
    return None


# ------------------------------------------------------------------------------ label store
class LabelStore:
    """Message -> label table with a bounded newest-first pending queue and versions.

    Every message is in at most one of: labelled, pending (waiting), in flight (taken by a
    labeller, not answered yet). `version` counts labels added so far; `since(v)` returns those
    added after version v, so a learner holding version v pulls only what changed.
    """

    def __init__(self, max_pending: int = 10000):
        if max_pending < 1:
            raise ValueError("max_pending must be >= 1")
        self.max_pending = max_pending
        self._labels: dict[str, int] = {}
        self._log: list[str] = []                           # messages in the order labels arrived
        self._pending: OrderedDict[str, None] = OrderedDict()   # oldest first; served from the end
        self._in_flight: set[str] = set()
        self._first_seen: dict[str, float] = {}
        self._lag: dict[str, float] = {}                    # message -> label time - first seen
        self.dropped = 0

    @property
    def version(self) -> int:
        return len(self._log)

    def submit(self, messages: Sequence[str], now: float) -> int:
        """Queue the messages not seen before (exact text); returns how many were queued."""
        queued = 0
        for m in messages:
            if m in self._first_seen:
                continue
            self._first_seen[m] = now
            self._pending[m] = None
            queued += 1
        while len(self._pending) > self.max_pending:
            self._pending.popitem(last=False)   # drop the oldest: ONI serves the newest
            self.dropped += 1
        return queued

    def take(self, n: int) -> list[str]:
        """Up to n pending messages, newest first; they are in flight until `put` or `requeue`."""
        out = []
        while self._pending and len(out) < n:
            m, _ = self._pending.popitem(last=True)
            out.append(m)
        self._in_flight.update(out)
        return out

    def requeue(self, messages: Sequence[str]) -> None:
        """Put in-flight messages back (their labelling call failed)."""
        for m in messages:
            if m in self._in_flight:
                self._in_flight.discard(m)
                self._pending[m] = None

    def put(self, labels: dict[str, int], now: float) -> int:
        """Store labels (0/1); returns the new version. A message labelled twice keeps its first label."""
        for m, lab in labels.items():
            if lab not in (0, 1):
                raise ValueError(f"label must be 0 or 1, got {lab!r} for {m!r}")
            self._in_flight.discard(m)
            self._pending.pop(m, None)
            if m in self._labels:
                continue
            self._labels[m] = int(lab)
            self._log.append(m)
            self._first_seen.setdefault(m, now)
            self._lag[m] = now - self._first_seen[m]
        return self.version

    def since(self, version: int) -> tuple[int, dict[str, int]]:
        """(current version, labels added after `version`)."""
        if not 0 <= version <= self.version:
            raise ValueError(f"version {version} is outside 0..{self.version}")
        return self.version, {m: self._labels[m] for m in self._log[version:]}

    def get(self, message: str) -> int | None:
        return self._labels.get(message)

    def share_labelled_within(self, seconds: float, now: float) -> float:
        """Of the messages first seen at least `seconds` ago, the share labelled within `seconds`."""
        old = [m for m, t in self._first_seen.items() if t <= now - seconds]
        if not old:
            return 0.0
        return sum(1 for m in old if self._lag.get(m, float("inf")) <= seconds) / len(old)

    def stats(self, now: float) -> dict[str, float]:
        lags = sorted(self._lag.values())
        return {"labels": len(self._labels), "positive": sum(self._labels.values()),
                "pending": len(self._pending), "in_flight": len(self._in_flight),
                "seen": len(self._first_seen), "dropped": self.dropped, "version": self.version,
                "lag_median_s": lags[len(lags) // 2] if lags else 0.0,
                "labelled_within_10s": self.share_labelled_within(10.0, now)}


# ------------------------------------------------------------------------------ labeller
@dataclass(frozen=True, slots=True)
class LabelBatch:
    """What one labelling call returns.

    Attributes:
        labels: message -> 0/1 for every message asked (unparsable answers -> 0).
        unparsable: how many answers named neither code word.
        seconds: wall time of the generate call.
        generated_tokens: tokens the annotator generated.
    """
    labels: dict[str, int]
    unparsable: int
    seconds: float
    generated_tokens: int = 0


class Labeller:
    """Messages in, labels out, through any `Generator` (one batched call per `label`)."""

    def __init__(self, generator: Generator, cfg: LabellerConfig,
                 render: Callable[[str], str] | None = None):
        """`render` turns the plain prompt into the model's input (e.g. a chat template); identity by default."""
        self.generator = generator
        self.cfg = cfg
        self.render = render or (lambda p: p)

    def prompts(self, messages: Sequence[str]) -> list[str]:
        return [self.render(build_prompt(m, self.cfg.goal, knowledge=self.cfg.knowledge)) for m in messages]

    def label(self, messages: Sequence[str]) -> LabelBatch:
        """Label `messages` (deduplicated by the caller); unparsable answers count and label 0."""
        if not messages:
            return LabelBatch({}, 0, 0.0)
        t0 = time.perf_counter()
        params = SamplingParams(n=1, max_tokens=self.cfg.max_tokens, temperature=self.cfg.temperature)
        outs = self.generator.generate(self.prompts(messages), params)
        labels, bad, tokens = {}, 0, 0
        for m, row in zip(messages, outs):
            verdict = parse_label(row[0].text)
            bad += verdict is None
            labels[m] = verdict or 0
            tokens += row[0].num_tokens
        return LabelBatch(labels, bad, time.perf_counter() - t0, tokens)


# ------------------------------------------------------------------------------ heuristic annotator
# (name, pattern, analysis): the first matching rule labels a message helpful (1) under the score
# goal; no match -> 0. The rules follow what ONI's prompt calls progress: items and gold, stairs
# and descending, level feelings and sounds that reveal the level, kills, level-ups, doors that
# open. Messages about walls, closed or locked doors, misses, prompts and cancels match nothing.
HEURISTIC_RULES: tuple[tuple[str, str, str], ...] = (
    ("gold", r"\bgold pieces?\b|counting money", "the message is about gold."),
    ("level_up", r"[Ww]elcome to experience level|You feel (?:more|much|stronger|tougher|agile|wise|healthy)",
     "the player grew stronger."),
    ("kill", r"\bYou (?:kill|destroy)\b|\bis killed\b|\bdies\b", "the player killed a monster."),
    ("stairs", r"staircase|You (?:descend|climb)|ladder", "the message is about the way down."),
    ("pickup", r"^[a-zA-Z] - ", "the player picked up an item."),
    ("item_here", r"You see here|You find|Things that are here|several objects here",
     "there is an item to take."),
    ("feeling", r"You have a (?:strange|sad|funny) feeling|You hear (?:the footsteps|bubbling water|a door open"
                r"|the chime|the splashing)|You enter", "the message reveals the level."),
    ("door_open", r"The door opens|You unlock|door is now unlocked|You succeed in", "the way forward opened."),
    ("eat", r"delicious|You finish eating", "the player ate and stays alive."),
)
_COMPILED = tuple((name, re.compile(p), a) for name, p, a in HEURISTIC_RULES)
_NEUTRAL_ANALYSIS = "the message does not help progress."


def heuristic_label(message: str, goal: LabelGoal = LabelGoal.SCORE) -> tuple[int, str]:
    """(label, one-sentence analysis) by the first matching rule of `HEURISTIC_RULES`.

    Goals: score uses every rule; gold only the gold rule; combat only kill and level-up.
    """
    allowed = {LabelGoal.SCORE: None, LabelGoal.GOLD: {"gold"},
               LabelGoal.COMBAT: {"kill", "level_up"}}[LabelGoal(goal)]
    for name, pattern, analysis in _COMPILED:
        if (allowed is None or name in allowed) and pattern.search(message):
            return 1, analysis
    return 0, _NEUTRAL_ANALYSIS


def distillation_examples(messages: Sequence[str], goal: LabelGoal = LabelGoal.SCORE
                          ) -> list[tuple[str, str]]:
    """(prompt, answer) pairs labelled by `heuristic_label`, in the knowledge-free prompt format."""
    out = []
    for m in messages:
        label, analysis = heuristic_label(m, goal)
        out.append((build_prompt(m, goal, knowledge=False), _answer(analysis, label, False) + "\n"))
    return out
