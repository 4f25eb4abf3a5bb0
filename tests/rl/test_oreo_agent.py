"""OREO on a hand-built agent conversation: step-level groups are the agent's turns, observation
tokens are never actions, and V(s_k) is read where the state before turn k ends (after the
previous observation) -- the "next state skips the observation" rule of OREO's ALFWorld trainer
(algorithms.md 2.3)."""
from __future__ import annotations

import torch

from reasoner.records import Trajectory
from rl.data import collate_trajectories, encode_trajectory
from rl.learners.oreo import OREOConfig, OREOLearner, OREOVariant, action_groups
from rl.losses import group_first_index, group_sum, oreo_policy_loss, oreo_value_loss

# char tokenizer (tests/rl/conftest.py): one token per character; EOS appended after the last turn
CONV = Trajectory("alfworld/train/x", 0, "rollout", prompt="go:", steps=("a1\n", "b\n"),
                  observations=("o:x\n", "o:y\n"), reward=1.0)


def _batch(tok):
    return collate_trajectories([encode_trajectory(CONV, tok)], tok.pad_token_id)


def test_step_groups_are_turns_and_skip_observations(tok):
    batch = _batch(tok)
    text = "go:" + "a1\n" + "o:x\n" + "b\n" + "o:y\n"
    # tokens: g o : a 1 \n o : x \n b \n <eos> o : y \n   (EOS ends the final turn, before its observation)
    assert batch.input_ids.shape == (1, len(text) + 1)
    groups, G = action_groups(batch, OREOVariant.STEP)
    assert G == 2
    # label-aligned: index j refers to token j+1
    assert groups[0].tolist() == [-1, -1, 0, 0, 0, -1, -1, -1, -1, 1, 1, 1, -1, -1, -1, -1]
    first, mask = group_first_index(groups, G)
    # V(s_0) is read at index 2 (state = the prompt "go:"), V(s_1) at index 9 (state ends with "o:x\n")
    assert first.tolist() == [[2, 9]] and mask.tolist() == [[1.0, 1.0]]
    token_groups, T = action_groups(batch, OREOVariant.TOKEN)
    assert T == 6 and token_groups[0].tolist() == [-1, -1, 0, 1, 2, -1, -1, -1, -1, 3, 4, 5, -1, -1, -1, -1]
    # a per-token quantity sums per turn: 3 tokens of turn 0, 3 (b, \n, EOS) of turn 1
    ones = batch.action_mask
    assert group_sum(ones, groups, G).tolist() == [[3.0, 3.0]]


def test_step_level_oreo_losses_by_hand(tok, make_model):
    """The learner's losses equal eqs. 8-9 computed by hand on the two turns."""
    from reasoner.value_model import ValueModel
    torch.manual_seed(0)
    policy, ref = make_model(seed=1), make_model(seed=2)
    value = ValueModel.from_policy(make_model(seed=3), tok)
    torch.nn.init.normal_(value.value_head.weight, std=0.5)
    cfg = OREOConfig(variant=OREOVariant.STEP, beta=0.5, device="cpu", batch_size=1, grad_accum=1, max_steps=1)
    learner = OREOLearner(policy, ref, value, tok, cfg)
    batch = _batch(tok)
    v_loss, p_loss, kl, _ = learner.losses(batch)
    with torch.no_grad():
        ids = batch.input_ids[0]
        lp = torch.log_softmax(policy(ids[None]).logits[0, :-1].float(), -1)
        lr = torch.log_softmax(ref(ids[None]).logits[0, :-1].float(), -1)
        rho = (lp - lr).gather(1, ids[1:, None])[:, 0]
        rho0, rho1 = rho[2:5].sum(), rho[9:12].sum()                 # turn 0 tokens, turn 1 tokens (+EOS)
        v = value(ids[None], torch.ones_like(ids)[None])[0]
        v0, v1 = v[2], v[9]
        b, R = 0.5, 1.0
        value_ref = ((v0 + b * (rho0 + rho1) - R) ** 2 + (v1 + b * rho1 - R) ** 2) / 2
        policy_ref = ((v0 + b * rho0 + b * rho1 - R) ** 2 + (v1 + b * rho1 - R) ** 2) / 2
    assert torch.allclose(v_loss, value_ref, atol=1e-5) and torch.allclose(p_loss, policy_ref, atol=1e-5)
    assert kl.item() > 0
