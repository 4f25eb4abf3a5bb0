"""Bootstrap data for the tiny refiner: judgments and minimal-edit refinements, made by the task.

SPaR initialises its refiner on a strong model's judgments and refinements (algorithms.md 4.2,
"Initialisation"); on CPU we have no strong model, so the task makes them itself. Starting from a
prompt's checker-accepted reference `Draft` (`envs.instruct`), `corrupt` breaks one or two of
its constraints with a small structural edit (drop the keyword sentence, add a forbidden word,
lose the quotes, change the case, add a comma, add or drop a sentence or bullet, drop the end
phrase). The IFEval checkers label every response (this is the only place they produce training
targets; inside self-play judging is the refiner's alone), and:

- a **judgment** is the step-by-step check the SPaR judge prompt asks for, one line per
  constraint in prompt order, then the verdict after the marker:

      Include the word sea: no
      Do not use any commas: yes
      Final Judgement: No

- a **refinement** (for a failing response) is a reflection naming the unmet constraints and the
  fixed response between delimiters; the fix is the reference draft the corruption came from, so
  it differs from the failing response only in the broken part (a minimal edit):

      Reflection: Include the word sea.
      [ANSWER]
      The cat rests by the sea. I like the cat.
      [/ANSWER]

The markers must equal `search.refine.RefineConfig`'s defaults (a test checks it).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Sequence

from envs.ifeval import check_strict
from envs.instruct import ADJECTIVES, PLACES, VERBS, Draft, InstructProblem, _sentence, describe, render

__all__ = ["VERDICT_MARKER", "ANSWER_OPEN", "ANSWER_CLOSE", "JudgeExample", "RefineExample", "corrupt",
           "critique_text", "refinement_text", "bootstrap_examples"]

VERDICT_MARKER = "Final Judgement:"
ANSWER_OPEN = "[ANSWER]"
ANSWER_CLOSE = "[/ANSWER]"


@dataclass(frozen=True)
class JudgeExample:
    """Judge input (question, response) and its target critique; `passed` = all constraints met."""
    question: str
    response: str
    critique: str
    passed: bool


@dataclass(frozen=True)
class RefineExample:
    """Refine input (question, failing response, its critique) and the target refinement output."""
    question: str
    response: str
    critique: str
    refinement: str


def critique_text(problem: InstructProblem, verdicts: Sequence[bool]) -> str:
    """Step-by-step check of every constraint, then `Final Judgement: Yes|No`."""
    lines = [f"{describe(c)}: {'yes' if ok else 'no'}" for c, ok in zip(problem.constraints, verdicts)]
    return "\n".join(lines + [f"{VERDICT_MARKER} {'Yes' if all(verdicts) else 'No'}"])


def refinement_text(problem: InstructProblem, verdicts: Sequence[bool], refined: str) -> str:
    """Reflection on the unmet constraints, then the refined response between the delimiters."""
    unmet = [describe(c) + "." for c, ok in zip(problem.constraints, verdicts) if not ok]
    return f"Reflection: {' '.join(unmet)}\n{ANSWER_OPEN}\n{refined}\n{ANSWER_CLOSE}"


def _topic(problem: InstructProblem) -> str:
    return problem.question.split(".")[0].split()[-1]


def _break(d: Draft, cid: str, kw: dict, topic: str, rng: random.Random) -> Draft:
    sents = list(d.sentences)
    if cid == "keywords:existence":
        w = kw["keywords"][0]
        keep = [s for s in sents if w not in s.replace(",", "").split(" ")]
        while len(keep) < len(sents):
            s = _sentence(topic, rng, comma=False)
            if w not in s.split(" "):
                keep.append(s)
        sents = keep
    elif cid == "keywords:forbidden_words":
        w = kw["forbidden_words"][0]
        s = f"the {topic} is {w}" if w in ADJECTIVES else f"the {topic} {rng.choice(VERBS)} " + \
            next(p for p in PLACES if p.endswith(w))
        sents[rng.randrange(len(sents))] = s
    elif cid in ("length_constraints:number_words", "length_constraints:number_sentences",
                 "detectable_format:number_bullet_lists"):
        grow = kw.get("relation") == "less than" or (cid.endswith("bullet_lists") and rng.random() < 0.5) \
            or len(sents) == 1
        if grow:
            sents += [_sentence(topic, rng, comma=False) for _ in range(rng.randint(1, 3))]
        else:
            sents = sents[:rng.randint(1, len(sents) - 1)]
    elif cid in ("change_case:english_lowercase", "change_case:english_capital"):
        return replace(d, case="sentence")
    elif cid == "startend:end_checker":
        return replace(d, end_phrase="")
    elif cid == "punctuation:no_comma":
        sents[rng.randrange(len(sents))] = _sentence(topic, rng, comma=True)
    elif cid == "startend:quotation":
        return replace(d, quotes=False)
    return replace(d, sentences=tuple(sents))


def corrupt(problem: InstructProblem, rng: random.Random, *, max_broken: int = 2) -> tuple[str, tuple[bool, ...]]:
    """A response that breaks 1..max_broken of the problem's constraints, and its checker verdicts.

    The verdicts come from the IFEval checkers (an edit can break more or fewer constraints than
    it aimed at; the labels are always the checkers').
    """
    d = problem.draft
    targets = rng.sample(problem.constraints, rng.randint(1, min(max_broken, len(problem.constraints))))
    for c in targets:
        d = _break(d, c.id, dict(c.as_dict()), _topic(problem), rng)
    text = render(d)
    return text, check_strict(problem.ifeval(), text)


def bootstrap_examples(problems: Sequence[InstructProblem], *, seed: int = 0,
                       pass_fraction: float = 0.4) -> tuple[list[JudgeExample], list[RefineExample]]:
    """Judgment examples (passing and failing responses) and refinement examples (failing ones).

    Each problem yields one judgment, of its reference (with probability `pass_fraction`) or of a
    corruption, and every failing corruption yields a refinement back to the reference.
    """
    rng = random.Random(f"instruct-bootstrap-{seed}")
    judges, refines = [], []
    for p in problems:
        if rng.random() < pass_fraction:
            ok = check_strict(p.ifeval(), p.reference)
            judges.append(JudgeExample(p.question, p.reference, critique_text(p, ok), all(ok)))
            continue
        text, ok = corrupt(p, rng)
        crit = critique_text(p, ok)
        judges.append(JudgeExample(p.question, text, crit, all(ok)))
        if not all(ok):
            refines.append(RefineExample(p.question, text, crit, refinement_text(p, ok, p.reference)))
    return judges, refines
