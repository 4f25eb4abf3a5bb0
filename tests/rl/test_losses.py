"""Loss tests: hand-computed values on 2-4 element tensors, gradient flow, and TRL agreement."""
from __future__ import annotations

import math

import pytest
import torch

from rl.losses import (exact_kl, group_first_index, group_sum, oreo_policy_loss, oreo_value_loss,
                       reverse_cumsum, sequence_mean, step_dpo_loss, token_logprobs)


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


# --------------------------------------------------------------------------------------- helpers
def test_token_logprobs_shift_and_values():
    logits = torch.tensor([[[0.0, 0.0], [0.0, math.log(3.0)], [5.0, 5.0]]])     # [1, 3, 2]
    ids = torch.tensor([[0, 1, 0]])
    lp = token_logprobs(logits, ids)                                             # scores ids[1], ids[2]
    assert lp.shape == (1, 2)
    assert lp[0, 0].item() == pytest.approx(math.log(0.5))
    assert lp[0, 1].item() == pytest.approx(math.log(0.25))


def test_reverse_cumsum_and_sequence_mean():
    x = torch.tensor([[1.0, 2.0, 4.0], [8.0, 16.0, 32.0]])
    m = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 1.0]])
    assert reverse_cumsum(x, m).tolist() == [[7.0, 6.0, 4.0], [40.0, 32.0, 32.0]]
    # row means 7/3 and 40/2, then the batch mean
    assert sequence_mean(x, m).item() == pytest.approx((7 / 3 + 20) / 2)


def test_group_sum_and_first_index():
    ids = torch.tensor([[-1, 0, 0, -1, 1, 1], [-1, -1, 0, 0, 0, -1]])
    x = torch.tensor([[9.0, 1.0, 2.0, 9.0, 3.0, 4.0], [9.0, 9.0, 5.0, 6.0, 7.0, 9.0]])
    assert group_sum(x, ids, 2).tolist() == [[3.0, 7.0], [18.0, 0.0]]
    first, mask = group_first_index(ids, 2)
    assert first.tolist() == [[1, 4], [2, 0]]
    assert mask.tolist() == [[1.0, 1.0], [1.0, 0.0]]


# --------------------------------------------------------------------------------------- DPO
def test_step_dpo_loss_hand_values_and_gradients():
    pc = torch.tensor([-1.0, -2.0], requires_grad=True)
    pr = torch.tensor([-2.0, -1.0], requires_grad=True)
    rc = torch.tensor([-1.5, -1.5], requires_grad=True)
    rr = torch.tensor([-1.5, -1.5], requires_grad=True)
    out = step_dpo_loss(pc, pr, rc, rr, torch.tensor([0.0, 0.25]), beta=0.5)
    # h = [1, -1]; beta*h = [0.5, -0.5]
    assert out.margins.tolist() == [1.0, -1.0]
    expected = [softplus(-0.5), 0.75 * softplus(0.5) + 0.25 * softplus(-0.5)]
    assert out.losses.tolist() == pytest.approx(expected, abs=1e-6)
    assert out.chosen_rewards.tolist() == pytest.approx([0.25, -0.25])
    out.losses.sum().backward()
    sig = lambda x: 1 / (1 + math.exp(-x))
    # d/d pc = -beta (1-eps) sigma(-beta h) + beta eps sigma(beta h)
    g0 = -0.5 * sig(-0.5)
    g1 = -0.5 * 0.75 * sig(0.5) + 0.5 * 0.25 * sig(-0.5)
    assert pc.grad.tolist() == pytest.approx([g0, g1], abs=1e-6)
    assert pr.grad.tolist() == pytest.approx([-g0, -g1], abs=1e-6)
    assert pc.grad[0] < 0   # raising the chosen log-prob lowers the loss
    assert rc.grad is None and rr.grad is None   # the reference never receives gradients


def test_step_dpo_loss_float_smoothing_equals_tensor():
    args = [torch.tensor([-1.0]), torch.tensor([-3.0]), torch.tensor([-2.0]), torch.tensor([-2.0])]
    a = step_dpo_loss(*args, 0.1, beta=0.1).losses
    b = step_dpo_loss(*args, torch.tensor([0.1]), beta=0.1).losses
    assert a.item() == pytest.approx(0.9 * softplus(-0.2) + 0.1 * softplus(0.2))
    assert a.item() == b.item()


# --------------------------------------------------------------------------------------- KL
def test_exact_kl_hand_value_and_gradient():
    p = torch.tensor([[0.0, 0.0]], requires_grad=True)                 # pi = [1/2, 1/2]
    q = torch.tensor([[0.0, math.log(3.0)]], requires_grad=True)       # pi_ref = [1/4, 3/4]
    kl = exact_kl(p, q)
    assert kl.item() == pytest.approx(0.5 * math.log(2.0) + 0.5 * math.log(2 / 3))
    kl.sum().backward()
    assert p.grad is not None and q.grad is None
    # the full-vocabulary KL is not the sampled-token estimate at either token
    lp, lq = torch.log_softmax(p.detach(), -1), torch.log_softmax(q.detach(), -1)
    sampled = torch.exp(lq - lp) + (lp - lq) - 1
    assert all(abs(s - kl.item()) > 1e-3 for s in sampled[0].tolist())


def test_exact_kl_matches_kl_div_on_random_logits():
    g = torch.Generator().manual_seed(0)
    p, q = torch.randn(4, 7, generator=g), torch.randn(4, 7, generator=g)
    ref = torch.nn.functional.kl_div(torch.log_softmax(q, -1), torch.log_softmax(p, -1),
                                     reduction="none", log_target=True).sum(-1)
    assert torch.allclose(exact_kl(p, q), ref, atol=1e-6)


# --------------------------------------------------------------------------------------- OREO
def _oreo_inputs():
    # row 0: three states; row 1: one state then padding (values 9 on padding must not matter)
    v = torch.tensor([[0.5, 0.4, 0.2], [0.1, 9.0, 9.0]], requires_grad=True)
    rho = torch.tensor([[0.1, -0.2, 0.3], [0.4, 7.0, 7.0]], requires_grad=True)
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    r = torch.tensor([1.0, 0.0])
    return v, rho, mask, r


def test_oreo_value_loss_hand_values_and_stop_gradient():
    v, rho, mask, r = _oreo_inputs()
    loss = oreo_value_loss(v, rho, mask, r, beta=0.5)
    # row 0: P = [0.2, 0.1, 0.3]; err = V + 0.5 P - 1 = [-0.4, -0.55, -0.65]
    # row 1: P = [0.4]; err = 0.1 + 0.2 - 0 = 0.3
    row0 = (0.16 + 0.3025 + 0.4225) / 3
    assert loss.item() == pytest.approx((row0 + 0.09) / 2, abs=1e-6)
    loss.backward()
    assert rho.grad is None                      # eq. 8: sg[P_t], the critic never moves the policy
    expected = [[2 * -0.4 / 3 / 2, 2 * -0.55 / 3 / 2, 2 * -0.65 / 3 / 2], [2 * 0.3 / 2, 0.0, 0.0]]
    assert torch.allclose(v.grad, torch.tensor(expected), atol=1e-6)


def test_oreo_policy_loss_hand_values_and_stop_gradients():
    v, rho, mask, r = _oreo_inputs()
    loss = oreo_policy_loss(v, rho, mask, r, beta=0.5)
    # forward value equals the value loss (rho_t + P_{t+1} = P_t); the gradients differ
    row0 = (0.16 + 0.3025 + 0.4225) / 3
    assert loss.item() == pytest.approx((row0 + 0.09) / 2, abs=1e-6)
    loss.backward()
    assert v.grad is None                        # eq. 9: sg[V(s_t)]
    # only the current log-ratio carries gradient: d/d rho_t = 2 err_t beta / n / B
    expected = torch.tensor([[2 * -0.4 * 0.5 / 3 / 2, 2 * -0.55 * 0.5 / 3 / 2, 2 * -0.65 * 0.5 / 3 / 2],
                             [2 * 0.3 * 0.5 / 2, 0.0, 0.0]])
    assert torch.allclose(rho.grad, expected, atol=1e-6)
    # without sg[P_{t+1}], rho_1 would also collect the t=0 term: -0.3167/2 instead of -0.1833/2
    assert rho.grad[0, 1].item() == pytest.approx(-0.55 * 0.5 * 2 / 3 / 2, abs=1e-6)


def test_oreo_step_level_equals_token_level_on_summed_steps():
    """Step-level: a step's log-ratio is the sum of its tokens' (algorithms.md 2.3)."""
    tok_rho = torch.tensor([[0.1, 0.2, -0.3, 0.4]], requires_grad=True)          # tokens of 2 steps
    ids = torch.tensor([[0, 0, 1, 1]])
    values = torch.tensor([[0.3, 0.0, 0.6, 0.0]])                                 # read at step starts
    first, m = group_first_index(ids, 2)
    step_rho = group_sum(tok_rho, ids, 2)                                         # [[0.3, 0.1]]
    loss = oreo_policy_loss(values.gather(1, first), step_rho, m, torch.tensor([1.0]), beta=1.0)
    # step 0: 0.3 + 0.3 + sg[0.1] - 1 = -0.3; step 1: 0.6 + 0.1 - 1 = -0.3
    assert loss.item() == pytest.approx(0.09, abs=1e-6)
    loss.backward()
    # every token of step k gets d/d rho_step_k = 2 * (-0.3) / 2
    assert torch.allclose(tok_rho.grad, torch.full((1, 4), -0.3), atol=1e-6)


def test_oreo_response_level_is_one_state():
    rho = torch.tensor([[0.2, 0.3]], requires_grad=True)
    loss = oreo_policy_loss(torch.tensor([[0.4]]), group_sum(rho, torch.tensor([[0, 0]]), 1),
                            torch.ones(1, 1), torch.tensor([0.0]), beta=0.1)
    assert loss.item() == pytest.approx((0.4 + 0.05) ** 2)               # eq. 10
    loss.backward()
    assert torch.allclose(rho.grad, torch.full((1, 2), 2 * 0.45 * 0.1))


# --------------------------------------------------------------------------------------- TRL
@pytest.fixture(scope="module")
def trl_trainer(tmp_path_factory, tok, make_model):
    """TRL 1.16's DPOTrainer on a tiny policy and a different tiny reference (sigmoid loss)."""
    pytest.importorskip("trl")
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    args = DPOConfig(output_dir=str(tmp_path_factory.mktemp("trl")), beta=0.1, loss_type="sigmoid",
                     use_cpu=True, report_to="none", save_strategy="no", max_length=64)
    ds = Dataset.from_list([{"prompt": "q: 1\n", "chosen": "a", "rejected": "b"}])
    trainer = DPOTrainer(model=make_model(0), ref_model=make_model(1), args=args,
                         train_dataset=ds, processing_class=tok)
    trainer.model.eval()
    return trainer


def _trl_loss(trainer, batch) -> float:
    completion = torch.cat([torch.zeros_like(batch.action_mask[:, :1]), batch.action_mask], 1).long()
    inputs = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask, "completion_mask": completion}
    with torch.no_grad():
        return trainer._compute_loss(trainer.model, inputs, False).item()


def _swap(batch):
    """The same pairs with chosen and rejected exchanged."""
    from rl.data import PairBatch
    flip = lambda t: torch.cat(t.chunk(2)[::-1])
    return PairBatch(flip(batch.input_ids), flip(batch.attention_mask), flip(batch.action_mask),
                     batch.label_smoothing)


def test_step_dpo_loss_matches_trl_dpo_trainer(trl_trainer, tok, pairs):
    """Our step_dpo_loss vs TRL 1.16 `DPOTrainer._compute_loss` (loss_type="sigmoid", beta=0.1).

    Both score the same tokens with the same policy and reference: TRL through its fused LM head on
    `completion_mask` (= our action mask: the step tokens after the divergence), we through
    `causal_lm_logits` + `token_logprobs`. TRL 1.16's sigmoid loss ignores `label_smoothing`, so
    eps > 0 is compared per pair as (1 - eps) * TRL(chosen, rejected) + eps * TRL(rejected, chosen),
    which is exactly the conservative-DPO loss.
    """
    from rl.data import collate_pairs, encode_pairs
    from rl.training import causal_lm_logits

    def ours(batch):
        with torch.no_grad():
            lp = token_logprobs(causal_lm_logits(trl_trainer.model, batch.input_ids, batch.attention_mask),
                                batch.input_ids)
            ref = token_logprobs(causal_lm_logits(trl_trainer.ref_model, batch.input_ids, batch.attention_mask),
                                 batch.input_ids)
        c, r = (lp * batch.action_mask).sum(-1).chunk(2)
        rc, rr = (ref * batch.action_mask).sum(-1).chunk(2)
        return step_dpo_loss(c, r, rc, rr, batch.label_smoothing, beta=0.1).losses

    items, _ = encode_pairs(pairs, tok, max_len=64)
    plain = collate_pairs([e._replace(label_smoothing=0.0) for e in items], 0)
    assert abs(ours(plain).mean().item() - _trl_loss(trl_trainer, plain)) < 1e-6
    for e in items:
        batch = collate_pairs([e], 0)
        eps = e.label_smoothing
        expected = (1 - eps) * _trl_loss(trl_trainer, batch) + eps * _trl_loss(trl_trainer, _swap(batch))
        assert abs(ours(batch).item() - expected) < 1e-6
    assert any(e.label_smoothing > 0 for e in items)
