"""Value-guided best-of-K action choice for LLM agents (OREO's ALFWorld test-time search).

OREO (arXiv 2412.16145 §4.4; algorithms.md 2.7) uses its learned value at test time on ALFWorld
this way: at every environment step, sample K full turns from the policy, score the state each
turn leads to (the conversation so far + that turn, before the environment answers) with the
critic, and execute the turn with the highest value. Success saturates around K = 5 in the
paper. Sampling must be on (temperature > 0) for K > 1 to differ from greedy; the paper's
evaluation samples at temperature 1 for this method.

`BestOfKPolicy` is a `search.agent.Policy`, so it runs through the same agent loop, envs and
records as every other policy: one batched `generate(n=K)` call per round for all live envs,
then one batched critic call over all B*K candidate states. Ties go to the first candidate
(the order the generator returned them). Candidates without a parseable action are scored like
any other (the paper's server scores every sampled turn); if one wins, the loop treats it as
configured by `AgentConfig.unparsed`.

The critic is any `search.evaluators.PrefixValueModel` (`values(prefixes) -> list[float]`),
e.g. `reasoner.value_model.ValueModel`; the state string is `context + turn`, where the turn is
what the trajectory would record (`fmt.split_turn(text)[0]`), so the critic reads exactly the
prefix it was trained on.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from envs.interactive import StepResult, TurnFormat
from reasoner.generation import Generator, SamplingParams
from search.agent import AgentConfig
from search.evaluators import PrefixValueModel

__all__ = ["BestOfKPolicy", "BestOfKStats"]


@dataclass
class BestOfKStats:
    """What the policy spent and chose over an evaluation."""
    rounds: int = 0
    candidates: int = 0
    generated_tokens: int = 0
    critic_calls: int = 0
    chosen_values: list[float] = field(default_factory=list)


class BestOfKPolicy:
    """Sample K turns per live env, execute the one whose resulting state the critic values most.

    Args:
        generator: the policy's `Generator`.
        value: the critic (`values(prefixes) -> list[float]`, larger is better).
        fmt: the env family's turn format (stop strings, turn splitting).
        cfg: agent settings (max tokens per turn, top_p).
        k: candidates per env and step (K >= 1).
        temperature: sampling temperature of the candidates (> 0 when k > 1).
    """

    def __init__(self, generator: Generator, value: PrefixValueModel, fmt: TurnFormat, cfg: AgentConfig, *,
                 k: int, temperature: float = 1.0):
        if k < 1:
            raise ValueError(f"best-of-K needs k >= 1, got {k}")
        if k > 1 and temperature <= 0:
            raise ValueError("best-of-K with k > 1 needs temperature > 0 (greedy samples are all the same)")
        self.generator, self.value, self.fmt, self.k = generator, value, fmt, k
        self.params = SamplingParams(n=k, max_tokens=cfg.max_tokens, temperature=temperature, top_p=cfg.top_p,
                                     stop=fmt.stop)
        self.stats = BestOfKStats()

    def choose(self, contexts: Sequence[str], candidates: Sequence[Sequence[str]]) -> tuple[list[int], list[float]]:
        """Index of the best candidate turn of each context, and its value.

        Args:
            contexts: [B] texts the turns continue.
            candidates: [B][K] raw turn texts.

        Returns:
            ([B] chosen index, first of the maxima; [B] its value).
        """
        states = [ctx + self.fmt.split_turn(text)[0] for ctx, row in zip(contexts, candidates) for text in row]
        flat = [float(v) for v in self.value.values(states)] if states else []
        self.stats.critic_calls += 1
        chosen, values, pos = [], [], 0
        for row in candidates:
            scores = flat[pos:pos + len(row)]
            pos += len(row)
            j = max(range(len(row)), key=lambda i: (scores[i], -i))
            chosen.append(j)
            values.append(scores[j])
        return chosen, values

    def act(self, contexts: Sequence[str], results: Sequence[StepResult], indices: Sequence[int]) -> list[str]:
        outs = self.generator.generate(list(contexts), self.params)                     # [B][K]
        candidates = [[c.text for c in row] for row in outs]
        chosen, values = self.choose(contexts, candidates)
        self.stats.rounds += 1
        self.stats.candidates += sum(len(r) for r in candidates)
        self.stats.generated_tokens += sum(c.num_tokens for row in outs for c in row)
        self.stats.chosen_values += values
        return [row[j] for row, j in zip(candidates, chosen)]
