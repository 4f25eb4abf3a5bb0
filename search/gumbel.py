"""Gumbel root selection: sequential halving with Gumbel top-k at the search root.

Danihelka et al., "Policy improvement by planning with Gumbel" (ICLR 2022; Gumbel MuZero), as
mctx implements it (`gumbel_muzero_policy`, `seq_halving.py`, `qtransforms.py`). At the root of a
decision, instead of PUCT:

1. draw g(a) ~ Gumbel(0, 1) for every root child a (once per decision);
2. consider the m = min(num_children, considered) children with the largest g(a) + logits(a);
3. spread the simulations over them by sequential halving: simulation k goes to the considered
   child whose visit count equals `considered_visit_sequence(m, n)[k]` and whose score
   g(a) + logits(a) + sigma(q(a)) is largest; every halving phase keeps the better half;
4. commit to argmax over the most visited considered children of the same score.

    sigma(q) = (maxvisit_init + max_b N(b)) * value_scale * q_hat(a)

where q_hat is Q(s, a) rescaled to [0, 1] by min-max over the root's children (mctx
`rescale_values=True`). mctx completes the Q of unvisited children with a mixed value because its
children have no evaluation before a visit; in a step-level tree every child is evaluated when it
is created (Q = r = v(child) - v(root), `search.tree.Tree.add_children`), so no completion is
needed. logits(a) = log prior(a) (the step prior of `search.mcts.step_prior`; its normaliser
cancels in every argmax).

Below the root the search keeps PUCT (`search.core`). Pure NumPy, no model calls: `search.mcts`
calls these functions when `MCTSConfig.root_selection` is `gumbel`. No LLM-reasoning peer has it
(issue 11); it is here to be compared with PUCT at equal simulations.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["considered_visit_sequence", "rescaled_q", "gumbel_scores", "halving_child", "final_child"]


def considered_visit_sequence(max_considered: int, num_simulations: int) -> tuple[int, ...]:
    """Visit count each simulation's root child must have, per sequential halving (mctx, same output).

    With m considered children and n simulations, phase by phase every remaining child gets
    max(1, floor(n / (ceil(log2 m) * remaining))) more visits, then the remaining half survive
    (at least two). Entry k is the visit count of the child simulation k goes to.
    """
    if max_considered <= 1:
        return tuple(range(num_simulations))
    log2max = int(math.ceil(math.log2(max_considered)))
    sequence: list[int] = []
    visits = [0] * max_considered
    considered = max_considered
    while len(sequence) < num_simulations:
        extra = max(1, int(num_simulations / (log2max * considered)))
        for _ in range(extra):
            sequence.extend(visits[:considered])
            for i in range(considered):
                visits[i] += 1
        considered = max(2, considered // 2)
    return tuple(sequence[:num_simulations])


def rescaled_q(q: np.ndarray) -> np.ndarray:
    """Q of the root's children min-max rescaled to [0, 1] (all 0.5 when they are equal); [K] -> [K]."""
    q = np.asarray(q, np.float64)
    lo, hi = q.min(), q.max()
    if hi - lo < 1e-12:
        return np.full_like(q, 0.5)
    return (q - lo) / (hi - lo)


def gumbel_scores(gumbel: np.ndarray, prior: np.ndarray, q: np.ndarray, visits: np.ndarray, *,
                  maxvisit_init: float = 50.0, value_scale: float = 0.1) -> np.ndarray:
    """g(a) + logits(a) + sigma(q_hat(a)) for every root child ([K] arrays in, [K] out)."""
    logits = np.log(np.maximum(prior, 1e-30))
    sigma = (maxvisit_init + float(visits.max(initial=0))) * value_scale * rescaled_q(q)
    return gumbel + logits + sigma


def _considered(gumbel: np.ndarray, prior: np.ndarray, m: int) -> np.ndarray:
    """Indices of the m children with the largest g + logits (ties to the lower index)."""
    key = gumbel + np.log(np.maximum(prior, 1e-30))
    return np.argsort(-key, kind="stable")[:m]


def halving_child(gumbel: np.ndarray, prior: np.ndarray, q: np.ndarray, visits: np.ndarray,
                  sequence: tuple[int, ...], considered: int, **score_kw) -> int:
    """Index of the root child the next simulation goes to.

    The simulation index is the number of simulations already sent below the root (the sum of
    `visits`, which should count in-flight ones too). Among the considered children with exactly
    `sequence[index]` visits the best score wins; if none has that count (duplicates were
    dropped, or the sequence is exhausted), the least visited considered child with the best
    score does.
    """
    cand = _considered(gumbel, prior, min(considered, len(prior)))
    index = int(visits.sum())
    scores = gumbel_scores(gumbel, prior, q, visits, **score_kw)
    if index < len(sequence):
        match = [a for a in cand if visits[a] == sequence[index]]
        if match:
            return int(max(match, key=lambda a: (scores[a], -a)))
    low = visits[cand].min()
    return int(max((a for a in cand if visits[a] == low), key=lambda a: (scores[a], -a)))


def final_child(gumbel: np.ndarray, prior: np.ndarray, q: np.ndarray, visits: np.ndarray,
                considered: int, **score_kw) -> int:
    """The child the root commits to: best score among the most visited considered children."""
    cand = _considered(gumbel, prior, min(considered, len(prior)))
    top = visits[cand].max()
    scores = gumbel_scores(gumbel, prior, q, visits, **score_kw)
    return int(max((a for a in cand if visits[a] == top), key=lambda a: (scores[a], -a)))
