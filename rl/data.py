"""Tokenisation and collation of learner records (`StepPair`, `Trajectory`) into tensors.

Token alignment (exact masks by construction): the prompt, the shared prefix and every step are
tokenised *separately* and their ids concatenated, so each token belongs to exactly one piece and
the action masks never shift (algorithms.md 8.5). The prompt is encoded with the tokenizer's
special tokens (a BOS for tokenizers that add one), every later piece without. Tokenising the
joined text in one go can merge tokens across a boundary for BPE tokenizers; that is why
`reasoner.value_model.ValueModel.values` exists in an ids form too.

Preference pairs (step-DPO, MCTS-DPO): a batch is `[chosen rows; rejected rows]` and is split with
`.chunk(2)`, as TRL does. Tokens the chosen and rejected steps share at their start are moved into
the context, so the action mask covers exactly the tokens after the first divergent token
(algorithms.md 3.4 / 8.8). Their log-ratios would cancel in `h` anyway; masking them removes the
noise. No EOS is appended to a step.

Trajectories (OREO): the sequence is `prompt + steps[0] + observations[0] + steps[1] + ...`; only
step tokens are actions (never prompt or observation tokens). A trajectory record is a finished
attempt (it has its outcome reward), so EOS is appended after the final step, before the final
observation, as an action token of the final step (OREO builds `prompt + response + EOS`,
algorithms.md 2.4): the policy also learns when to stop. `append_eos=False` turns this off.

Records longer than `max_len` tokens are skipped (MCTS-DPO skips over-long pairs; cutting a
trajectory would detach its reward from the tokens that earned it); the encoders report how many.
Batches are right-padded; models get position ids from the attention mask.

Masks are label-aligned: index j of an `[B, L-1]` mask refers to token j+1 (see `rl.losses`).
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch

from reasoner.records import StepPair, Trajectory

__all__ = ["EncodedPair", "EncodedTrajectory", "PairBatch", "TrajectoryBatch", "encode_pair",
           "encode_trajectory", "encode_pairs", "encode_trajectories", "collate_pairs",
           "collate_trajectories", "pad_id_of"]


def pad_id_of(tokenizer) -> int:
    """The tokenizer's pad id, or its EOS id when it has no pad token."""
    pad = tokenizer.pad_token_id
    return tokenizer.eos_token_id if pad is None else pad


def _ids(tokenizer, text: str, *, special: bool = False) -> list[int]:
    if not text:
        return []
    return list(tokenizer(text, add_special_tokens=special)["input_ids"])


class EncodedPair(NamedTuple):
    """Token ids of one step pair; `context` holds prompt + prefix + the steps' shared start."""
    context: list[int]
    chosen: list[int]        # tokens after the divergence
    rejected: list[int]
    label_smoothing: float   # eps = StepPair.weight


class EncodedTrajectory(NamedTuple):
    """Token ids of one trajectory and the step index of each token (-1 = not an action)."""
    input_ids: list[int]     # [L]
    step_index: list[int]    # [L], unshifted: step_index[i] refers to input_ids[i]
    reward: float


class PairBatch(NamedTuple):
    """A collated batch of B pairs, chosen rows first."""
    input_ids: torch.Tensor        # [2B, L] long
    attention_mask: torch.Tensor   # [2B, L] long
    action_mask: torch.Tensor      # [2B, L-1] float, label-aligned: 1 where token j+1 is a step token
    label_smoothing: torch.Tensor  # [B] float

    def to(self, device) -> "PairBatch":
        return PairBatch(*(t.to(device) for t in self))


class TrajectoryBatch(NamedTuple):
    """A collated batch of B trajectories."""
    input_ids: torch.Tensor        # [B, L] long
    attention_mask: torch.Tensor   # [B, L] long
    action_mask: torch.Tensor      # [B, L-1] float, label-aligned
    step_index: torch.Tensor       # [B, L-1] long, label-aligned; -1 outside steps
    rewards: torch.Tensor          # [B] float, R in {0, 1}

    def to(self, device) -> "TrajectoryBatch":
        return TrajectoryBatch(*(t.to(device) for t in self))


def encode_pair(pair: StepPair, tokenizer) -> EncodedPair:
    """Tokenise prompt, prefix, chosen and rejected separately; split off their shared start."""
    context = _ids(tokenizer, pair.prompt, special=True) + _ids(tokenizer, pair.prefix)
    chosen, rejected = _ids(tokenizer, pair.chosen), _ids(tokenizer, pair.rejected)
    d = 0
    while d < min(len(chosen), len(rejected)) and chosen[d] == rejected[d]:
        d += 1
    return EncodedPair(context + chosen[:d], chosen[d:], rejected[d:], float(pair.weight))


def encode_trajectory(traj: Trajectory, tokenizer, *, append_eos: bool = True) -> EncodedTrajectory:
    """Tokenise prompt, steps and observations separately; EOS ends the final step."""
    ids = _ids(tokenizer, traj.prompt, special=True)
    index = [-1] * len(ids)
    last = len(traj.steps) - 1
    for k, (step, obs) in enumerate(zip(traj.steps, traj.observations)):
        step_ids = _ids(tokenizer, step)
        if k == last and append_eos:
            step_ids.append(tokenizer.eos_token_id)
        obs_ids = _ids(tokenizer, obs)
        ids += step_ids + obs_ids
        index += [k] * len(step_ids) + [-1] * len(obs_ids)
    return EncodedTrajectory(ids, index, float(traj.reward))


def encode_pairs(pairs: Sequence[StepPair], tokenizer, max_len: int) -> tuple[list[EncodedPair], int]:
    """Encode pairs, skipping those whose longer sequence exceeds `max_len`; returns (kept, skipped)."""
    kept = []
    for p in pairs:
        e = encode_pair(p, tokenizer)
        if len(e.context) + max(len(e.chosen), len(e.rejected)) <= max_len:
            kept.append(e)
    return kept, len(pairs) - len(kept)


def encode_trajectories(trajs: Sequence[Trajectory], tokenizer, max_len: int, *,
                        append_eos: bool = True) -> tuple[list[EncodedTrajectory], int]:
    """Encode trajectories, skipping those longer than `max_len`; returns (kept, skipped)."""
    kept = [e for e in (encode_trajectory(t, tokenizer, append_eos=append_eos) for t in trajs)
            if len(e.input_ids) <= max_len]
    return kept, len(trajs) - len(kept)


def _right_pad(rows: list[list[int]], fill: int) -> torch.Tensor:
    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), fill, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, :len(r)] = torch.tensor(r, dtype=torch.long)
    return out


def collate_pairs(items: Sequence[EncodedPair], pad_id: int) -> PairBatch:
    """Right-pad B pairs into one `[chosen; rejected]` batch of 2B rows."""
    rows, acts = [], []
    for side in ("chosen", "rejected"):
        for e in items:
            step = getattr(e, side)
            rows.append(e.context + step)
            acts.append([0] * len(e.context) + [1] * len(step))
    input_ids = _right_pad(rows, pad_id)
    attention_mask = _right_pad([[1] * len(r) for r in rows], 0)
    action_mask = _right_pad(acts, 0)[:, 1:].float()
    eps = torch.tensor([e.label_smoothing for e in items], dtype=torch.float32)
    return PairBatch(input_ids, attention_mask, action_mask, eps)


def collate_trajectories(items: Sequence[EncodedTrajectory], pad_id: int) -> TrajectoryBatch:
    """Right-pad B trajectories into one batch."""
    input_ids = _right_pad([e.input_ids for e in items], pad_id)
    attention_mask = _right_pad([[1] * len(e.input_ids) for e in items], 0)
    step_index = _right_pad([e.step_index for e in items], -1)[:, 1:]
    rewards = torch.tensor([e.reward for e in items], dtype=torch.float32)
    return TrajectoryBatch(input_ids, attention_mask, (step_index >= 0).float(), step_index, rewards)
