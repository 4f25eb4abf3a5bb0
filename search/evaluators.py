"""Value functions: how a search scores partial solutions (the seam between search and models).

Search never loads a model. It hands `SearchState`s to a `ValueFn` and gets one float per state
(DESIGN "Contracts": `values(states) -> float[B]`), in the same OpenSpiel-evaluator spirit as
`Generator` for sampling. Three implementations:

- `OutcomeValue`: the outcome reward R in {0, 1} from `envs.grading.grade` at terminal states
  (MCTS-DPO's O(s), algorithms.md 3.3, with our reward convention, 8.3); non-terminal states
  get an inner estimate (or 0). It reads the reference answer, so it is training-only.
- `SelfEvalValue`: MCTS-DPO's self-evaluation C(s): the policy itself is asked whether the
  partial solution is heading the right way, and C is the probability it gives the "correct"
  option. We score both options by teacher forcing (`Generator.logprobs`) and normalise over
  the two: C = p(correct) / (p(correct) + p(incorrect)). (The MCTS-DPO code greedily decodes
  4 tokens and sums the softmax mass of "correct"-like tokens; the two-way normalisation reads
  directly as a probability and works with any tokenizer.) MCTS-DPO's depth penalty
  v = C / max(d_parent - 3, 1) is applied here (`depth_penalty_from`). The reference answer is
  shown to the evaluator only with `show_reference` (training-only, off by default;
  algorithms.md 8.10).
- `LearnedValue`: wraps a learned critic (e.g. `reasoner.value_model.ValueModel`, OREO's
  critic). A model with `state_values(prompts, steps)` gets each state as its prompt and its
  steps (`reasoner.steps.split_steps`), so it can encode them exactly as in training; any other
  model with `values(prefixes: list[str])` gets the text prompt + response.

Every ValueFn says whether it reads the reference (`uses_reference`), so test-time search can
refuse one that would leak the answer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Callable, Protocol, Sequence, runtime_checkable

from envs.base import Problem
from reasoner.generation import Generator
from reasoner.steps import StepFormat, split_steps

__all__ = ["SearchState", "ValueFn", "PrefixValueModel", "StateValueModel", "TerminalValue", "OutcomeValue",
           "SelfEvalConfig", "SelfEvalValue", "LearnedValue", "LikelihoodValue", "MixtureValue", "DEFAULT_SELF_EVAL_TEMPLATE"]


@dataclass(frozen=True, slots=True)
class SearchState:
    """A partial (or finished) solution as a value function sees it.

    Attributes:
        problem: the task record (question; answer and solution only for reference-using fns).
        prompt: the rendered prompt the policy continues.
        response: the steps so far, joined (each keeps its delimiter).
        depth: number of steps in `response`.
        is_terminal: the response is finished (EOS, answer line, or step cap).
    """
    problem: Problem
    prompt: str
    response: str
    depth: int
    is_terminal: bool


@runtime_checkable
class ValueFn(Protocol):
    """Scores states; larger is better. Implementations state whether they read references."""

    uses_reference: bool

    def values(self, states: Sequence[SearchState]) -> list[float]:
        """One value per state, in order."""
        ...


@runtime_checkable
class PrefixValueModel(Protocol):
    """A learned value over text prefixes (prompt + partial response), e.g. OREO's critic."""

    def values(self, prefixes: list[str]) -> list[float]:
        ...


@runtime_checkable
class StateValueModel(Protocol):
    """A learned value that takes each state as its prompt and its list of steps."""

    def state_values(self, prompts: Sequence[str], steps: Sequence[Sequence[str]]) -> list[float]:
        ...


class LikelihoodValue:
    """The policy's own likelihood of a (partial) response as its value: a generative verifier
    that needs no training (the "LM's own likelihood" lever of issue 11).

        v(s) = exp( mean_i log pi(y_i | x, y_<i) )    over the response tokens y (1 for the empty response)

    i.e. the per-token geometric-mean probability, in (0, 1]. Length-normalised so that a longer
    correct solution is not ranked below a short wrong one. One batched `Generator.logprobs` call
    per `values`. Measured on the embedded default (benchmarks/results/value_discrimination.json,
    `likelihood` row): it ranks responses within a problem better than the outcome-trained critic.

    Args:
        generator: the policy `Generator` whose `logprobs` scores responses by teacher forcing.
    """

    uses_reference = False

    def __init__(self, generator: Generator):
        self.generator = generator

    def values(self, states: Sequence[SearchState]) -> list[float]:
        out = [1.0] * len(states)
        idx = [i for i, s in enumerate(states) if s.response]
        if idx:
            scored = self.generator.logprobs([states[i].prompt for i in idx], [states[i].response for i in idx])
            for i, sc in zip(idx, scored):
                if sc.logprobs:
                    out[i] = math.exp(sum(sc.logprobs) / len(sc.logprobs))
        return out


class MixtureValue:
    """A weighted sum of value functions: sum_i w_i * v_i(s) (one batched call per part).

    Args:
        parts: (value function, weight) pairs; weights need not sum to 1.
    """

    def __init__(self, parts: Sequence[tuple[ValueFn, float]]):
        if not parts:
            raise ValueError("MixtureValue needs at least one (value_fn, weight) part")
        self.parts = list(parts)

    @property
    def uses_reference(self) -> bool:
        return any(getattr(fn, "uses_reference", False) for fn, _ in self.parts)

    def values(self, states: Sequence[SearchState]) -> list[float]:
        total = [0.0] * len(states)
        for fn, weight in self.parts:
            for i, v in enumerate(fn.values(states)):
                total[i] += weight * float(v)
        return total


class TerminalValue(str, Enum):
    """What a terminal state is worth under `OutcomeValue`."""
    OUTCOME = "outcome"
    """v = R in {0, 1}: the grader's verdict replaces any estimate where the truth is known."""
    OUTCOME_PLUS_ESTIMATE = "outcome_plus_estimate"
    """v = R + estimate: MCTS-DPO's R(s) = O(s) + C(s) (the paper uses O in {-1, +1})."""


class OutcomeValue:
    """Outcome reward at terminal states; an inner estimate (or 0) elsewhere. Training-only.

    Args:
        estimate: ValueFn for non-terminal states (and added at terminals in
            OUTCOME_PLUS_ESTIMATE mode); None gives 0 there (pure outcome search).
        terminal: how terminal states are valued.
        grader: `grade(response, reference) -> bool`; defaults to `envs.grading.grade`.
    """

    uses_reference = True

    def __init__(self, estimate: ValueFn | None = None, *, terminal: TerminalValue = TerminalValue.OUTCOME,
                 grader: Callable[[str, str], bool] | None = None):
        if grader is None:
            from envs.grading import grade as grader
        self.estimate = estimate
        self.terminal = TerminalValue(terminal)
        self.grader = grader

    def values(self, states: Sequence[SearchState]) -> list[float]:
        need = [i for i, s in enumerate(states)
                if not s.is_terminal or self.terminal == TerminalValue.OUTCOME_PLUS_ESTIMATE]
        est = [0.0] * len(states)
        if self.estimate is not None and need:
            for i, v in zip(need, self.estimate.values([states[i] for i in need])):
                est[i] = float(v)
        out = []
        for s, e in zip(states, est):
            if not s.is_terminal:
                out.append(e)
                continue
            reward = 1.0 if self.grader(s.response, s.problem.answer) else 0.0
            out.append(reward + e if self.terminal == TerminalValue.OUTCOME_PLUS_ESTIMATE else reward)
        return out


DEFAULT_SELF_EVAL_TEMPLATE = (
    "Question: {question}\n"
    "{reference}"
    "Proposed solution, possibly unfinished:\n{response}\n"
    "Is every step of the proposed solution right so far? Answer correct or incorrect.\n"
    "Verdict:"
)


@dataclass
class SelfEvalConfig:
    """LLM self-evaluation (MCTS-DPO's C(s)); the `self_eval` block of a recipe."""
    template: str = DEFAULT_SELF_EVAL_TEMPLATE
    """Evaluation prompt with {question}, {response} and {reference} (the reference line or "")."""
    reference_line: str = "Reference answer: {answer}\n"
    """What {reference} becomes when show_reference is on ({answer}, {solution} available)."""
    correct: str = " correct"
    """Continuation that means the solution is right."""
    incorrect: str = " incorrect"
    """Continuation that means the solution is wrong."""
    depth_penalty: bool = True
    """Divide C by max(d_parent - depth_penalty_from, 1), as MCTS-DPO's code does."""
    depth_penalty_from: int = 3
    """Parent depth after which the penalty starts."""
    show_reference: bool = False
    """Training-only: show the reference answer to the evaluator (MCTS-DPO's hinted prompt)."""

    def __post_init__(self) -> None:
        for key in ("{question}", "{response}", "{reference}"):
            if key not in self.template:
                raise ValueError(f"self_eval.template must contain {key}")
        if not self.correct or not self.incorrect or self.correct == self.incorrect:
            raise ValueError("self_eval.correct and self_eval.incorrect must be distinct non-empty strings")


class SelfEvalValue:
    """The policy judges its own partial solutions (one batched `logprobs` call per `values`).

    Args:
        generator: the policy `Generator` (its `logprobs` scores the two options).
        cfg: prompt, options, depth penalty and the training-only reference switch.
    """

    def __init__(self, generator: Generator, cfg: SelfEvalConfig | None = None):
        self.generator = generator
        self.cfg = cfg or SelfEvalConfig()

    @property
    def uses_reference(self) -> bool:
        return self.cfg.show_reference

    def prompt(self, state: SearchState) -> str:
        """The evaluation prompt for one state."""
        ref = ""
        if self.cfg.show_reference:
            ref = self.cfg.reference_line.format(answer=state.problem.answer, solution=state.problem.solution)
        return self.cfg.template.format(question=state.problem.question, response=state.response, reference=ref)

    def values(self, states: Sequence[SearchState]) -> list[float]:
        if not states:
            return []
        prompts = [self.prompt(s) for s in states]
        scored = self.generator.logprobs([p for p in prompts for _ in range(2)],
                                         [self.cfg.correct, self.cfg.incorrect] * len(prompts))
        if scored[0].token_ids == scored[1].token_ids:
            raise ValueError(f"self-evaluation options {self.cfg.correct!r} and {self.cfg.incorrect!r} tokenize "
                             "identically for this policy (out of vocabulary?): choose other option words "
                             "(self_eval.correct / incorrect) or use a learned value")
        out = []
        for i, s in enumerate(states):
            lp_correct, lp_incorrect = sum(scored[2 * i].logprobs), sum(scored[2 * i + 1].logprobs)
            conf = _sigmoid(lp_correct - lp_incorrect)   # p_c / (p_c + p_i)
            if self.cfg.depth_penalty:
                conf /= max(s.depth - 1 - self.cfg.depth_penalty_from, 1)
            out.append(conf)
        return out


class LearnedValue:
    """A learned value (OREO critic) over each state's prompt and response.

    Args:
        model: a `StateValueModel` (preferred: scored on prompt + steps, the training encoding)
            or anything with `values(prefixes: list[str]) -> list[float]`.
        step_format: how responses are cut into steps for a `StateValueModel` (lines by default).
    """

    uses_reference = False

    def __init__(self, model: "StateValueModel | PrefixValueModel", step_format: StepFormat | None = None):
        self.model = model
        self.step_format = step_format or StepFormat()

    def values(self, states: Sequence[SearchState]) -> list[float]:
        if not states:
            return []
        if isinstance(self.model, StateValueModel):
            steps = [split_steps(s.response, self.step_format) for s in states]
            return [float(v) for v in self.model.state_values([s.prompt for s in states], steps)]
        return [float(v) for v in self.model.values([s.prompt + s.response for s in states])]


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)
