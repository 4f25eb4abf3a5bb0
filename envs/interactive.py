"""Interactive text environments: the `Env` interface shared by ALFWorld and NetHack/MiniHack.

An LLM agent sees text and answers with a text action, one turn at a time. `Env` fixes the
contract the agent loop (`search.agent`), the evaluator and the actor pools rely on, in the pgx
style: the public `reset` / `step` enforce the invariants, subclasses implement `_reset` /
`_step` and never count steps themselves.

Invariants enforced here:
- `step` before the first `reset`, or after the episode is done, raises `EnvError`.
- Every `step` counts toward `max_steps`, invalid actions included (ReAct/OREO count every turn
  of the 40-turn ALFWorld budget; algorithms.md section 2.9). When the count reaches
  `max_steps` and the episode has not ended, the result is marked `done` and `truncated`.
- An invalid action (not admissible, not parseable) never fails: the subclass answers it the
  way its papers do (ALFWorld "Nothing happens.", NetHack a no-op) and sets `invalid`; it is
  counted in `num_invalid`.
- Constructors only store arguments; the heavy game is built on the first `reset`. An env that
  has not been reset pickles, so it can be shipped to a worker process or a Ray actor.

`TurnFormat` is how an env's text becomes an LLM conversation (ReAct for ALFWorld, an action
menu for NetHack): each env module provides one, the agent loop uses it.

`EnvGroup` steps a batch of envs together, sequentially or over a thread pool; it is the unit a
Ray actor owns (`launch/env_actors.py`), and the local pool of the agent loop.

This module imports nothing outside the standard library.
"""
from __future__ import annotations

import abc
import dataclasses
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

__all__ = ["StepResult", "Env", "EnvError", "EnvGroup", "TurnFormat"]


class EnvError(RuntimeError):
    """An env was used out of order (step before reset, step after done) or lacks a feature."""


@dataclass(frozen=True, slots=True)
class StepResult:
    """What an env returns from `reset` and `step`.

    Attributes:
        text: what the agent observes now: the initial description (with the goal) after
            `reset`, the env's feedback to the action after `step`.
        actions: the admissible actions now (ALFWorld commands, NetHack action names), or None
            when the env does not list them.
        reward: reward of this transition (0.0 after `reset`).
        done: the episode is over (won, lost, or truncated at the step limit).
        won: the goal is reached (the success flag; R = 1 exactly when won).
        truncated: the episode ended because `max_steps` was reached.
        invalid: the action was not valid and was answered by a no-op.
        info: small extra facts (numbers and strings only), env-specific.
    """
    text: str
    actions: tuple[str, ...] | None
    reward: float = 0.0
    done: bool = False
    won: bool = False
    truncated: bool = False
    invalid: bool = False
    info: dict[str, Any] = field(default_factory=dict)


class TurnFormat(Protocol):
    """Turns env text into the model's context and the model's turns into env actions.

    A trajectory reads `prompt + steps[0] + observations[0] + steps[1] + ...`: `steps` are
    the agent's turns as recorded (`split_turn`), `observations` the text that follows each
    (`observation`). `context` is what the model continues at the next turn (the whole
    trajectory so far, or a window of it).
    """

    stop: tuple[str, ...]
    """Stop strings that end one generated turn."""

    def initial_prompt(self, first: StepResult) -> str:
        """The prompt for an episode whose first observation is `first`."""
        ...

    def context(self, prompt: str, steps: Sequence[str], observations: Sequence[str]) -> str:
        """The text the model continues for its next turn."""
        ...

    def split_turn(self, text: str) -> tuple[str, str | None]:
        """(the turn as recorded in the trajectory, the parsed action or None if unparseable)."""
        ...

    def observation(self, result: StepResult) -> str:
        """The text recorded after a step (the env's feedback, formatted)."""
        ...

    def turn_for_action(self, action: str) -> str:
        """How a turn that only takes `action` is written (expert and random policies)."""
        ...


class Env(abc.ABC):
    """A text environment with a step budget (see the module docstring for the invariants).

    Subclasses implement `_reset(seed) -> StepResult` and `_step(action) -> StepResult`
    (never setting `truncated`), and may override `expert_action` and `_stats`.
    """

    def __init__(self, max_steps: int):
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        self.max_steps = max_steps
        self._num_steps = 0
        self._num_invalid = 0
        self._return = 0.0
        self._last: StepResult | None = None

    # ------------------------------------------------------------------ identity
    @property
    @abc.abstractmethod
    def env_id(self) -> str:
        """Stable identifier of the game/task, e.g. "alfworld/valid_unseen/<game>/<trial>"."""

    @property
    def task_type(self) -> str:
        """Category used to break results down (ALFWorld task type); "" when there is none."""
        return ""

    # ------------------------------------------------------------------ the contract
    def reset(self, seed: int | None = None) -> StepResult:
        """Start a new episode (building the game on first use) and return the first observation."""
        self._num_steps = 0
        self._num_invalid = 0
        self._return = 0.0
        result = self._reset(seed)
        if result.done:
            raise EnvError(f"{self.env_id}: episode is over at reset")
        self._last = result
        return result

    def step(self, action: str) -> StepResult:
        """Apply one agent action (any string; invalid ones are answered, counted, not raised)."""
        if self._last is None:
            raise EnvError(f"{self.env_id}: step() before reset()")
        if self._last.done:
            raise EnvError(f"{self.env_id}: step() after the episode is done")
        result = self._step(str(action))
        self._num_steps += 1
        self._num_invalid += int(result.invalid)
        self._return += result.reward
        if not result.done and self._num_steps >= self.max_steps:
            result = dataclasses.replace(result, done=True, truncated=True)
        self._last = result
        return result

    @abc.abstractmethod
    def _reset(self, seed: int | None) -> StepResult:
        ...

    @abc.abstractmethod
    def _step(self, action: str) -> StepResult:
        ...

    # ------------------------------------------------------------------ state and extras
    @property
    def num_steps(self) -> int:
        """Steps taken in the current episode (invalid ones included)."""
        return self._num_steps

    @property
    def num_invalid(self) -> int:
        """Invalid actions in the current episode."""
        return self._num_invalid

    @property
    def last(self) -> StepResult | None:
        """The latest result (None before the first reset)."""
        return self._last

    def expert_action(self) -> str:
        """The expert's next action (ALFWorld's hand-coded expert); EnvError if there is none."""
        raise EnvError(f"{type(self).__name__} has no expert")

    def episode_stats(self) -> dict[str, Any]:
        """Statistics of the current episode: steps, invalid actions, return, won, plus `_stats()`."""
        last = self._last
        stats: dict[str, Any] = {
            "env_id": self.env_id, "task_type": self.task_type, "steps": self._num_steps,
            "invalid": self._num_invalid, "return": self._return,
            "won": bool(last is not None and last.won),
            "truncated": bool(last is not None and last.truncated),
        }
        stats.update(self._stats())
        return stats

    def _stats(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        """Release the game; a later `reset` builds it again."""
        self._last = None


class EnvGroup:
    """A batch of envs stepped together (the local pool, and what one Ray actor owns).

    Every method takes `indices` into the group and returns one entry per index, in order.
    With `num_threads > 1` the envs of one call run on a thread pool (each env is used by at
    most one thread per call); with 0 or 1 they run one after another.
    """

    def __init__(self, envs: Sequence[Env], *, num_threads: int = 0):
        self.envs = list(envs)
        self.num_threads = num_threads
        self._pool: ThreadPoolExecutor | None = None

    def __len__(self) -> int:
        return len(self.envs)

    def _map(self, fn, indices: Sequence[int], args: Sequence[Any]) -> list[Any]:
        if len(set(indices)) != len(indices):
            raise EnvError(f"duplicate env indices in one call: {list(indices)}")
        if self.num_threads <= 1 or len(indices) <= 1:
            return [fn(self.envs[i], a) for i, a in zip(indices, args)]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.num_threads)
        return list(self._pool.map(lambda ia: fn(self.envs[ia[0]], ia[1]), zip(indices, args)))

    def ids(self) -> list[tuple[str, str]]:
        """(env_id, task_type) of every env, in order."""
        return [(e.env_id, e.task_type) for e in self.envs]

    def reset(self, indices: Sequence[int], seeds: Sequence[int | None]) -> list[StepResult]:
        return self._map(lambda e, s: e.reset(s), indices, seeds)

    def step(self, indices: Sequence[int], actions: Sequence[str]) -> list[StepResult]:
        return self._map(lambda e, a: e.step(a), indices, actions)

    def expert_actions(self, indices: Sequence[int]) -> list[str]:
        return self._map(lambda e, _: e.expert_action(), indices, [None] * len(indices))

    def episode_stats(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        return self._map(lambda e, _: e.episode_stats(), indices, [None] * len(indices))

    def close(self) -> None:
        for e in self.envs:
            e.close()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
