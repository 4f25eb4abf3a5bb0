"""Embedded instruction following: short texts over a small vocabulary under 1-3 IFEval constraints.

The CPU stand-in for IFEval in SPaR runs (algorithms.md 4; issue 12). A prompt asks for a few
sentences about a topic under constraints drawn from IFEval's own instruction types, with
IFEval's argument names, so that the very checkers that score IFEval (`envs.ifeval`, lm-eval's
`lm_eval.tasks.ifeval`) verify every response:

    Write about the cat. Use at least 15 words. Do not use any commas.

| constraint (IFEval id) | kwargs | prompt text |
| --- | --- | --- |
| keywords:existence | keywords=[w] | Include the word w. |
| keywords:forbidden_words | forbidden_words=[w] | Do not use the word w. |
| length_constraints:number_words | relation, num_words | Use at least / less than N words. |
| length_constraints:number_sentences | relation, num_sentences | Write at least / less than N sentences. |
| change_case:english_lowercase | - | Use only lowercase letters. |
| change_case:english_capital | - | Use only capital letters. |
| startend:end_checker | end_phrase | End with the phrase: P |
| detectable_format:number_bullet_lists | num_bullets | Use exactly N bullet points. |
| punctuation:no_comma | - | Do not use any commas. |
| startend:quotation | - | Wrap your answer in double quotes. |

A response is built from a `Draft` (sentences over the vocabulary plus a case, bullets, quotes
and an end phrase) rendered to text; the reference response of a prompt is a seeded draft that
the checkers accept (rejection sampling). Splits are disjoint by a hash of the prompt text, as in
`envs.arith`. Everything is seeded. The refiner's bootstrap data (judgments and minimal-edit
refinements) is built from the same drafts in `envs.instruct_bootstrap`.
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field, replace
from typing import Iterator

from envs.base import TaskError, take_distinct
from envs.ifeval import IFEvalPrompt, check_strict

__all__ = ["InstructConfig", "Constraint", "Draft", "InstructProblem", "make_problem", "render",
           "iter_problems", "load_instruct", "vocabulary_words", "describe", "split_of", "CONSTRAINT_TYPES"]

TOPICS = ("cat", "dog", "bird", "fish", "sun", "rain", "tree", "boat")
ADJECTIVES = ("small", "big", "red", "green", "happy", "calm", "warm", "cold", "soft", "old")
VERBS = ("sleeps", "runs", "sings", "waits", "plays", "rests")
PLACES = ("in the park", "by the sea", "at home", "on the hill")
END_PHRASES = ("That is all.", "The end.", "See you soon.")
KEYWORDS = ADJECTIVES + ("park", "sea", "home", "hill")
CONSTRAINT_TYPES = (
    "keywords:existence", "keywords:forbidden_words", "length_constraints:number_words",
    "length_constraints:number_sentences", "change_case:english_lowercase", "change_case:english_capital",
    "startend:end_checker", "detectable_format:number_bullet_lists", "punctuation:no_comma",
    "startend:quotation",
)
_CONFLICTS = {frozenset({"change_case:english_lowercase", "change_case:english_capital"}),
              frozenset({"detectable_format:number_bullet_lists", "length_constraints:number_sentences"}),
              frozenset({"detectable_format:number_bullet_lists", "length_constraints:number_words"}),
              frozenset({"detectable_format:number_bullet_lists", "startend:quotation"})}


@dataclass
class InstructConfig:
    """The embedded instruction-following task (the `instruct` block of `task`)."""
    min_constraints: int = 1
    """Fewest constraints per prompt."""
    max_constraints: int = 3
    """Most constraints per prompt (uniform in [min, max])."""
    test_fraction: float = 0.1
    """Share of the prompt space reserved for the test split (hash bucket)."""
    max_tries: int = 60
    """Drafts tried per prompt before the prompt is redrawn (the checkers must accept one)."""

    def __post_init__(self) -> None:
        if not 1 <= self.min_constraints <= self.max_constraints <= 3:
            raise ValueError("instruct: need 1 <= min_constraints <= max_constraints <= 3")
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError("instruct: test_fraction must be in (0, 1)")


@dataclass(frozen=True)
class Constraint:
    """One verifiable instruction: an IFEval id and its kwargs (as a sorted tuple of items)."""
    id: str
    kwargs: tuple = ()

    def as_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.kwargs}


@dataclass(frozen=True)
class Draft:
    """A response before rendering: base sentences (lowercase, no final period) and its format."""
    sentences: tuple[str, ...]
    case: str = "sentence"        # sentence | lower | upper
    bullets: bool = False
    quotes: bool = False
    end_phrase: str = ""


@dataclass(frozen=True)
class InstructProblem:
    """A prompt of the embedded task with its constraints and a checker-accepted reference."""
    id: str
    question: str
    constraints: tuple[Constraint, ...]
    reference: str
    draft: Draft

    def ifeval(self) -> IFEvalPrompt:
        """The IFEval-format record the checkers score."""
        return IFEvalPrompt(self.id, self.question, tuple(c.id for c in self.constraints),
                            tuple(c.as_dict() for c in self.constraints))


def describe(c: Constraint) -> str:
    """The instruction text of a constraint (without its final period)."""
    kw = dict(c.kwargs)
    if c.id == "keywords:existence":
        return f"Include the word {kw['keywords'][0]}"
    if c.id == "keywords:forbidden_words":
        return f"Do not use the word {kw['forbidden_words'][0]}"
    if c.id == "length_constraints:number_words":
        return f"Use {kw['relation']} {kw['num_words']} words"
    if c.id == "length_constraints:number_sentences":
        return f"Write {kw['relation']} {kw['num_sentences']} sentences"
    if c.id == "change_case:english_lowercase":
        return "Use only lowercase letters"
    if c.id == "change_case:english_capital":
        return "Use only capital letters"
    if c.id == "startend:end_checker":
        return f"End with the phrase: {kw['end_phrase'][:-1]}"
    if c.id == "detectable_format:number_bullet_lists":
        return f"Use exactly {kw['num_bullets']} bullet points"
    if c.id == "punctuation:no_comma":
        return "Do not use any commas"
    if c.id == "startend:quotation":
        return "Wrap your answer in double quotes"
    raise TaskError(f"instruct: unknown constraint {c.id!r}")


def split_of(question: str, test_fraction: float) -> str:
    """'test' iff the question's hash falls in the test bucket."""
    h = int.from_bytes(hashlib.blake2b(question.encode(), digest_size=8).digest(), "big")
    return "test" if (h % 1_000_000) < test_fraction * 1_000_000 else "train"


# ---------------------------------------------------------------------- sentences and rendering
def _sentence(topic: str, rng: random.Random, *, comma: bool) -> str:
    adj, adj2 = rng.sample(ADJECTIVES, 2)
    kind = rng.randrange(4)
    if comma:
        return f"the {topic} is {adj}, and it is {adj2}"
    if kind == 0:
        return f"the {topic} is {adj}"
    if kind == 1:
        return f"the {topic} {rng.choice(VERBS)} {rng.choice(PLACES)}"
    if kind == 2:
        return f"i like the {adj} {topic}"
    return f"the {adj} {topic} {rng.choice(VERBS)}"


def _case(text: str, case: str) -> str:
    if case == "lower":
        return text.lower()
    if case == "upper":
        return text.upper()
    return text


def render(d: Draft) -> str:
    """The response text of a draft (sentence case capitalises each sentence and "i")."""
    sents = []
    for s in d.sentences:
        s = " ".join("I" if w == "i" else w for w in s.split(" "))
        sents.append(_case(s[:1].upper() + s[1:] + ".", d.case))
    end = _case(d.end_phrase, d.case) if d.end_phrase else ""
    if d.bullets:
        text = "\n".join(f"* {s}" for s in sents) + (f"\n{end}" if end else "")
    else:
        text = " ".join(sents + ([end] if end else []))
    return f'"{text}"' if d.quotes else text


# ---------------------------------------------------------------------- prompts
def _draw_constraint(cid: str, rng: random.Random, used_words: set[str]) -> Constraint:
    words = [w for w in KEYWORDS if w not in used_words]
    if cid == "keywords:existence":
        w = rng.choice(words)
        used_words.add(w)
        return Constraint(cid, (("keywords", (w,)),))
    if cid == "keywords:forbidden_words":
        w = rng.choice(words)
        used_words.add(w)
        return Constraint(cid, (("forbidden_words", (w,)),))
    if cid == "length_constraints:number_words":
        rel = rng.choice(("at least", "less than"))
        n = rng.choice((12, 16, 20)) if rel == "at least" else rng.choice((8, 12, 16))
        return Constraint(cid, (("num_words", n), ("relation", rel)))
    if cid == "length_constraints:number_sentences":
        rel = rng.choice(("at least", "less than"))
        n = rng.choice((3, 4, 5)) if rel == "at least" else rng.choice((2, 3, 4))
        return Constraint(cid, (("num_sentences", n), ("relation", rel)))
    if cid == "startend:end_checker":
        return Constraint(cid, (("end_phrase", rng.choice(END_PHRASES)),))
    if cid == "detectable_format:number_bullet_lists":
        return Constraint(cid, (("num_bullets", rng.randint(2, 4)),))
    return Constraint(cid)


def _draw_constraints(rng: random.Random, cfg: InstructConfig) -> tuple[Constraint, ...]:
    k = rng.randint(cfg.min_constraints, cfg.max_constraints)
    while True:
        ids = rng.sample(CONSTRAINT_TYPES, k)
        if not any(frozenset({a, b}) in _CONFLICTS for a in ids for b in ids if a < b):
            break
    used: set[str] = set()
    return tuple(_draw_constraint(cid, rng, used) for cid in ids)


def question_text(topic: str, constraints: tuple[Constraint, ...]) -> str:
    return " ".join([f"Write about the {topic}."] + [describe(c) + "." for c in constraints])


def _draft_for(topic: str, constraints: tuple[Constraint, ...], rng: random.Random) -> Draft:
    """A draft that aims at the constraints (the checkers decide whether it meets them)."""
    ids = {c.id: dict(c.kwargs) for c in constraints}
    n = rng.randint(2, 4)
    if "length_constraints:number_sentences" in ids:
        kw = ids["length_constraints:number_sentences"]
        n = (rng.randint(kw["num_sentences"], 5) if kw["relation"] == "at least"
             else rng.randint(1, kw["num_sentences"] - 1))
    if "detectable_format:number_bullet_lists" in ids:
        n = ids["detectable_format:number_bullet_lists"]["num_bullets"]
    no_comma = "punctuation:no_comma" in ids
    forbidden = ids.get("keywords:forbidden_words", {}).get("forbidden_words", ("",))[0]
    sents = []
    while len(sents) < n:
        s = _sentence(topic, rng, comma=not no_comma and rng.random() < 0.25)
        if forbidden and forbidden in s.split(" ") + s.replace(",", "").split(" "):
            continue
        sents.append(s)
    if "keywords:existence" in ids:
        w = ids["keywords:existence"]["keywords"][0]
        if not any(w in s.split(" ") for s in sents):
            s = f"the {topic} is {w}" if w in ADJECTIVES else f"the {topic} {rng.choice(VERBS)} " + \
                next(p for p in PLACES if p.endswith(w))
            sents[rng.randrange(len(sents))] = s
    case = ("lower" if "change_case:english_lowercase" in ids else
            "upper" if "change_case:english_capital" in ids else "sentence")
    return Draft(tuple(sents), case=case, bullets="detectable_format:number_bullet_lists" in ids,
                 quotes="startend:quotation" in ids,
                 end_phrase=ids.get("startend:end_checker", {}).get("end_phrase", ""))


def make_problem(rng: random.Random, cfg: InstructConfig) -> InstructProblem | None:
    """Draw one prompt and a checker-accepted reference (None if no draft passes)."""
    topic = rng.choice(TOPICS)
    constraints = _draw_constraints(rng, cfg)
    question = question_text(topic, constraints)
    digest = hashlib.blake2b(question.encode(), digest_size=6).hexdigest()
    probe = InstructProblem(f"instruct/{digest}", question, constraints, "", Draft(()))
    rec = probe.ifeval()
    for _ in range(cfg.max_tries):
        d = _draft_for(topic, constraints, rng)
        text = render(d)
        if all(check_strict(rec, text)):
            return replace(probe, reference=text, draft=d)
    return None


def iter_problems(split: str, cfg: InstructConfig, seed: int = 0) -> Iterator[InstructProblem]:
    """Endless seeded stream of problems of one split."""
    if split not in ("train", "test"):
        raise TaskError(f"instruct: unknown split {split!r} (use 'train' or 'test')")
    rng = random.Random(f"instruct-{split}-{seed}")
    while True:
        p = make_problem(rng, cfg)
        if p is not None and split_of(p.question, cfg.test_fraction) == split:
            yield replace(p, id=p.id.replace("instruct/", f"instruct/{split}/"))


def load_instruct(split: str, n: int, cfg: InstructConfig | None = None, seed: int = 0) -> list[InstructProblem]:
    """`n` distinct problems of `split` (deterministic in `seed`)."""
    cfg = cfg or InstructConfig()
    if n < 0:
        raise TaskError(f"instruct: n must be >= 0, got {n}")
    return take_distinct(iter_problems(split, cfg, seed), n, f"instruct: cannot draw {n} distinct {split} problems")


def vocabulary_words() -> list[str]:
    """Every word prompts, responses, judgments and refinements use, in all three cases."""
    base = set(TOPICS) | set(ADJECTIVES) | set(VERBS) | {"i", "like", "the", "is", "and", "it"}
    for text in PLACES + END_PHRASES:
        base.update(w.strip(".").lower() for w in text.split())
    words = set()
    for w in base:
        words.update([w, w.capitalize(), w.upper()])
    prompt_words = ("Write about the Include word Do not use Use at least less than words sentences only "
                    "lowercase capital letters End with phrase exactly bullet points any commas Wrap your "
                    "answer in double quotes P S")
    judge_words = ("Judge response Instruction Response Check each constraint then give a final judgement "
                   "Final Judgement Yes No yes no Refine so that meets every Reflection ANSWER fix")
    words.update(prompt_words.split())
    words.update(judge_words.split())
    return sorted(words)
