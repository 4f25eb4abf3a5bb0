"""ONI's intrinsic reward functions and the reward mixing, as pure NumPy functions.

Notation (algorithms.md 5.4-5.5): `m_t` is the message of the observation a transition leads to,
`H` the label table (m -> l(m) in {0, 1}), `n_ep(m_t)` the episodic count of m_t up to and
including step t (`envs.nethack_rl.MessageCountWrapper`).

- ONI-Retrieval:      r_int(m) = l(m) if m in H else 0                   (exact text; "" is a key)
- ONI-Classification: r_int(m) = 1[p_psi(helpful | m) > tau]             (tau = 0.5; rl.message_model)
- Count scaling:      r_int_t / n_ep(m_t)^beta                           (beta = 3)
- Mixing (per transition, in the learner):
      r_t = c_ext * clip(s * r_ext_t, -c, c) + c_int * r_int(m_t) / n_ep(m_t)^beta
  with s = reward_scale = 1, c = reward_clip = 10, c_int = 0.4, c_ext = 10 on sparse tasks
  (0.1 on NetHackScore; 0 for the reward-free setting).

ONI clips the environment reward in its actor workers and mixes in the learner; doing both in
the learner (`launch/oni_rllib.py`'s connector) gives the same numbers and keeps the env loop
free of reward logic. The env-runner metrics keep the unclipped extrinsic return for evaluation.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

__all__ = ["RewardKind", "ONIRewardConfig", "MessageModelConfig", "retrieval_rewards", "classification_rewards",
           "count_scaled", "mix_rewards", "intrinsic_rewards", "rescore_transitions"]


class RewardKind(str, enum.Enum):
    """Which intrinsic reward the learner adds (none = extrinsic-only PPO)."""
    NONE = "none"
    RETRIEVAL = "retrieval"
    CLASSIFICATION = "classification"


@dataclass
class ONIRewardConfig:
    """Intrinsic reward and mixing (the `oni.reward` block)."""
    kind: RewardKind = RewardKind.RETRIEVAL
    """none (extrinsic only), retrieval (label table) or classification (message model)."""
    intrinsic_coef: float = 0.4
    """c_int: weight of the count-scaled intrinsic reward."""
    extrinsic_coef: float = 10.0
    """c_ext: weight of the clipped extrinsic reward (10 sparse tasks, 0.1 NetHackScore, 0 reward-free)."""
    count_exponent: float = 3.0
    """beta in r_int / n_ep(m)^beta."""
    reward_scale: float = 1.0
    """s: the extrinsic reward is multiplied by this before clipping."""
    reward_clip: float = 10.0
    """c: the scaled extrinsic reward is clipped to [-c, c]."""
    threshold: float = 0.5
    """tau: classification reward is 1 when p(helpful) > tau."""

    def __post_init__(self) -> None:
        self.kind = RewardKind(self.kind)
        if self.count_exponent < 0 or self.reward_clip <= 0:
            raise ValueError("oni.reward.count_exponent must be >= 0 and reward_clip > 0")
        if not 0.0 <= self.threshold < 1.0:
            raise ValueError("oni.reward.threshold must be in [0, 1)")


@dataclass
class MessageModelConfig:
    """The classification reward model and its training (the `oni.classifier` block)."""
    lr: float = 1e-4
    """Adam learning rate."""
    batch_size: int = 256
    """(message, label) pairs per gradient step."""
    steps_per_update: int = 32
    """Gradient steps each time new labels arrive."""
    max_labels: int = 25000
    """Stop training once the label table holds this many labels."""
    dropout: float = 0.1
    """Dropout in the MLP head."""

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.batch_size < 1 or self.steps_per_update < 0:
            raise ValueError("oni.classifier: lr must be > 0, batch_size >= 1, steps_per_update >= 0")


def retrieval_rewards(messages: Sequence[str], table: Mapping[str, int]) -> np.ndarray:
    """l(m_t) for labelled messages, 0 for unlabelled ones. Returns float32 [T]."""
    return np.fromiter((table.get(m, 0) for m in messages), dtype=np.float32, count=len(messages))


def classification_rewards(probs: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """1[p(helpful | m_t) > threshold] for probabilities [T]. Returns float32 [T]."""
    return (np.asarray(probs) > threshold).astype(np.float32)


def count_scaled(r_int: np.ndarray, counts: np.ndarray, beta: float) -> np.ndarray:
    """r_int_t / n_ep(m_t)^beta; counts must be >= 1 (a message is counted when seen). Returns [T]."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.size and counts.min() < 1:
        raise ValueError("episodic message counts must be >= 1")
    return (np.asarray(r_int, dtype=np.float64) / counts ** beta).astype(np.float32)


def mix_rewards(r_ext: np.ndarray, r_int_scaled: np.ndarray, cfg: ONIRewardConfig) -> np.ndarray:
    """c_ext * clip(s * r_ext, -c, c) + c_int * r_int_scaled (equation of 5.5). Returns float32 [T]."""
    ext = np.clip(cfg.reward_scale * np.asarray(r_ext, dtype=np.float64), -cfg.reward_clip, cfg.reward_clip)
    return (cfg.extrinsic_coef * ext + cfg.intrinsic_coef * np.asarray(r_int_scaled, dtype=np.float64)
            ).astype(np.float32)


def intrinsic_rewards(messages: Sequence[str], counts: Sequence[int], cfg: ONIRewardConfig, *,
                      table: Mapping[str, int] | None = None,
                      probs: Mapping[str, float] | None = None) -> np.ndarray:
    """Count-scaled intrinsic reward of each transition [T] for `cfg.kind`.

    Args:
        messages: [T] message text of the observation each transition leads to.
        counts: [T] its episodic count n_ep(m_t).
        table: the label table (retrieval).
        probs: p(helpful | m) for every message in `messages` (classification).
    """
    if cfg.kind == RewardKind.NONE:
        return np.zeros(len(messages), dtype=np.float32)
    if cfg.kind == RewardKind.RETRIEVAL:
        raw = retrieval_rewards(messages, table or {})
    else:
        if probs is None:
            raise ValueError("classification rewards need p(helpful | m) for the messages")
        raw = classification_rewards(np.array([probs[m] for m in messages], dtype=np.float32), cfg.threshold)
    return count_scaled(raw, np.asarray(counts), cfg.count_exponent)


def rescore_transitions(r_ext: np.ndarray, messages: Sequence[str], counts: Sequence[int], cfg: ONIRewardConfig, *,
                        table: Mapping[str, int] | None = None,
                        probs: Mapping[str, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(mixed rewards [T], count-scaled intrinsic rewards [T]) of one chunk of transitions.

    With kind none the extrinsic reward is still scaled, clipped and weighted (c_ext), so the
    extrinsic-only baseline trains on the same reward scale as the ONI variants.
    """
    if not len(r_ext) == len(messages) == len(counts):
        raise ValueError(f"rewards, messages and counts differ in length: {len(r_ext)}, {len(messages)}, {len(counts)}")
    r_int = intrinsic_rewards(messages, counts, cfg, table=table, probs=probs)
    return mix_rewards(r_ext, r_int, cfg), r_int
