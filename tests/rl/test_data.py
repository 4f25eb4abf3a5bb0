"""Collation tests with literal token ids (char tokenizer: 'a'=3 ... 'z'=28, '0'=29 ... '9'=38,
' '=39, '\\n'=40, '+'=41, '='=42, '#'=43, ':'=44; <pad>=0, <eos>=1)."""
from __future__ import annotations

import pytest
import torch

from reasoner.records import StepPair, Trajectory
from rl.data import (collate_pairs, collate_trajectories, encode_pair, encode_pairs, encode_trajectories,
                     encode_trajectory)
from rl.learners.oreo import OREOVariant, action_groups


def test_encode_pair_moves_shared_step_start_into_context(tok, pairs):
    e = encode_pair(pairs[0], tok)   # prompt "q: 2+3\n", prefix "2+3=5\n", "#5" vs "#6"
    assert e.context == [19, 44, 39, 31, 41, 32, 40, 31, 41, 32, 42, 34, 40, 43]
    assert e.chosen == [34] and e.rejected == [35]
    assert e.label_smoothing == 0.25


def test_collate_pairs_chosen_first_right_padded_masks_after_divergence(tok):
    a = StepPair("a", 0, 0, "q\n", "", "1+1", "2", 0.0, 0.0, 1, 1, 0.5)
    b = StepPair("b", 0, 0, "q\n", "", "ab", "ac", 0.0, 0.0, 1, 1, 0.0)
    batch = collate_pairs([encode_pair(a, tok), encode_pair(b, tok)], pad_id=0)
    assert batch.input_ids.tolist() == [
        [19, 40, 30, 41, 30],    # a chosen:   q \n | 1 + 1
        [19, 40, 3, 4, 0],       # b chosen:   q \n a | b
        [19, 40, 31, 0, 0],      # a rejected: q \n | 2
        [19, 40, 3, 5, 0],       # b rejected: q \n a | c
    ]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0]]
    # label-aligned: index j marks token j+1
    assert batch.action_mask.tolist() == [[0, 1, 1, 1], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 1, 0]]
    assert batch.label_smoothing.tolist() == [0.5, 0.0]
    chosen, rejected = batch.input_ids.chunk(2)
    assert chosen.shape == rejected.shape == (2, 5)


def test_encode_trajectory_actions_exclude_prompt_and_observations_eos_ends_final_step(tok, trajectories):
    e = encode_trajectory(trajectories[2], tok)   # "go\n" | "look\n" "a key\n" | "take key\n" <eos> "done\n"
    assert e.input_ids == [9, 17, 40,
                           14, 17, 17, 13, 40,
                           3, 39, 13, 7, 27, 40,
                           22, 3, 13, 7, 39, 13, 7, 27, 40, 1,
                           6, 17, 16, 7, 40]
    assert e.step_index == [-1] * 3 + [0] * 5 + [-1] * 6 + [1] * 10 + [-1] * 5
    assert e.reward == 1.0
    no_eos = encode_trajectory(trajectories[2], tok, append_eos=False)
    assert 1 not in no_eos.input_ids and len(no_eos.input_ids) == len(e.input_ids) - 1


def test_collate_trajectories_label_aligned(tok):
    t0 = Trajectory("x", 0, "s", "q", ("ab", "c"), ("", ""), 1.0)
    t1 = Trajectory("y", 0, "s", "q", ("d",), ("e",), 0.0)
    batch = collate_trajectories([encode_trajectory(t0, tok), encode_trajectory(t1, tok)], pad_id=0)
    assert batch.input_ids.tolist() == [[19, 3, 4, 5, 1], [19, 6, 1, 7, 0]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]]
    assert batch.step_index.tolist() == [[0, 0, 1, 1], [0, 0, -1, -1]]
    assert batch.action_mask.tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert batch.rewards.tolist() == [1.0, 0.0]
    groups = {v: action_groups(batch, v)[0].tolist() for v in OREOVariant}
    assert groups[OREOVariant.TOKEN] == [[0, 1, 2, 3], [0, 1, -1, -1]]
    assert groups[OREOVariant.STEP] == [[0, 0, 1, 1], [0, 0, -1, -1]]
    assert groups[OREOVariant.RESPONSE] == [[0, 0, 0, 0], [0, 0, -1, -1]]


def test_too_long_records_are_skipped_and_counted(tok, pairs, trajectories):
    assert [len(e.context) + len(e.chosen) for e in encode_pairs(pairs, tok, 100)[0]] == [15, 13, 15]
    kept, skipped = encode_pairs(pairs, tok, max_len=14)
    assert ([e.chosen for e in kept], skipped) == ([[37, 40]], 2)
    kept, skipped = encode_trajectories(trajectories, tok, max_len=20)
    assert (len(kept), skipped) == (2, 1)


def test_batch_to_moves_every_tensor(tok, trajectories):
    batch = collate_trajectories([encode_trajectory(t, tok) for t in trajectories], pad_id=0).to("cpu")
    assert all(isinstance(t, torch.Tensor) for t in batch)
    with pytest.raises(AttributeError):
        batch.input_ids = None   # NamedTuple: immutable
