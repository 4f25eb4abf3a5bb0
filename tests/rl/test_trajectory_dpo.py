"""Trajectory DPO (OREO's ALFWorld DPO baseline): pairs per game, turn-token log-ratios, a learner smoke."""
from __future__ import annotations

import pytest
import torch

from reasoner.records import Trajectory
from rl.data import collate_trajectories, encode_trajectory
from rl.learners.trajectory_dpo import TrajectoryDPOConfig, TrajectoryDPOLearner, trajectory_pairs
from rl.losses import masked_sum, token_logprobs


def _t(game: str, reward: float, turn: str = "a\n") -> Trajectory:
    return Trajectory(game, 0, "rollout", "go:", (turn,), ("o:x\n",), reward)


def test_pairs_are_won_vs_lost_of_one_game_at_most_max_pairs():
    trajs = [_t("g1", 1.0, "a\n"), _t("g1", 0.0, "b\n"), _t("g1", 0.0, "c\n"), _t("g1", 1.0, "d\n"),
             _t("g2", 1.0), _t("g2", 1.0), _t("g3", 0.0)]
    pairs = trajectory_pairs(trajs, max_pairs=5, seed=0)
    assert len(pairs) == 4 and all(w.problem_id == l.problem_id == "g1" for w, l in pairs)
    assert {(w.steps[0], l.steps[0]) for w, l in pairs} == {("a\n", "b\n"), ("a\n", "c\n"), ("d\n", "b\n"), ("d\n", "c\n")}
    assert trajectory_pairs(trajs, max_pairs=2, seed=0) == pairs[:2]
    assert trajectory_pairs(trajs, max_pairs=5, seed=0) == pairs                      # seeded
    assert trajectory_pairs([_t("g2", 1.0), _t("g3", 0.0)], max_pairs=5, seed=0) == []


def test_dpo_learner_scores_turn_tokens_only_and_moves_the_margin(tok, make_model):
    torch.manual_seed(0)
    policy, ref = make_model(seed=1), make_model(seed=1)
    trajs = [_t("g1", 1.0, "a\n"), _t("g1", 0.0, "b\n")]
    learner = TrajectoryDPOLearner(policy, ref, tok, TrajectoryDPOConfig(lr=1e-2, beta=0.1, max_steps=3,
                                                                         warmup_ratio=0.0, device="cpu"))
    # the log-prob the learner sums covers the turn and EOS, never the observation "o:x\n"
    batch = collate_trajectories([encode_trajectory(trajs[0], tok)], tok.pad_token_id)
    assert batch.action_mask.sum().item() == 3.0                     # "a", "\n", EOS
    out = learner.fit(trajs, None, progress=False)
    assert out["pairs"] == 1 and out["steps"] == 3
    with torch.no_grad():
        rows = collate_trajectories([encode_trajectory(t, tok) for t in trajs], tok.pad_token_id)
        logits = policy(input_ids=rows.input_ids, attention_mask=rows.attention_mask).logits[:, :-1]
        ref_logits = ref(input_ids=rows.input_ids, attention_mask=rows.attention_mask).logits[:, :-1]
        ratio = masked_sum(token_logprobs(logits, rows.input_ids) - token_logprobs(ref_logits, rows.input_ids),
                           rows.action_mask)
    assert ratio[0] - ratio[1] > 0.1                                 # the won trajectory gained against the lost
    with pytest.raises(ValueError, match="both a success"):
        TrajectoryDPOLearner(make_model(seed=1), make_model(seed=1), tok,
                             TrajectoryDPOConfig(device="cpu")).fit([_t("g1", 1.0)], progress=False)
