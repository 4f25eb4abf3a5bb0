"""SPaR learners: DPO + 0.1 NLL on whole responses, RFT schedule."""
from __future__ import annotations

import torch

from reasoner.records import StepPair
from rl.learners.sft import SFTConfig
from rl.learners.spar import RFTConfig, SparDPOConfig, SparDPOLearner, encode_response_pair, rft_sft_config
from rl.losses import token_logprobs


def _pair(chosen="The cat is red.", rejected="The cat is red, and it is old."):
    return StepPair(problem_id="p", policy_version=0, depth=0, prompt="Q: Write about the cat.\nA:\n", prefix="",
                    chosen=chosen, rejected=rejected, q_chosen=1.0, q_rejected=0.0, n_chosen=0, n_rejected=0,
                    weight=0.0)


def _tokenizer():
    from envs.instruct import vocabulary_words
    from reasoner.tokenizer import build_word_tokenizer
    return build_word_tokenizer(vocabulary_words(), extra_tokens=['"', "[", "]"])


def test_encode_response_pair_keeps_whole_responses_with_eos():
    tok = _tokenizer()
    e = encode_response_pair(_pair(), tok)
    ids = lambda t: tok(t, add_special_tokens=False)["input_ids"]  # noqa: E731
    assert e.context == ids("Q: Write about the cat.\nA:\n")
    assert e.chosen == ids("The cat is red.") + [tok.eos_token_id]
    assert e.rejected == ids("The cat is red, and it is old.") + [tok.eos_token_id]
    assert e.chosen[:4] == e.rejected[:4]   # the shared start is NOT moved into the context
    assert e.label_smoothing == 0.0


def _learner(nll_weight):
    from reasoner.tiny import TinyModelConfig, build_tiny_model
    tok = _tokenizer()
    mcfg = TinyModelConfig(hidden_size=32, num_heads=2, num_kv_heads=2, intermediate_size=64)
    policy, ref = build_tiny_model(mcfg, tok, seed=1), build_tiny_model(mcfg, tok, seed=2)
    cfg = SparDPOConfig(lr=1e-2, batch_size=2, grad_accum=1, max_steps=2, device="cpu", nll_weight=nll_weight)
    return SparDPOLearner(policy, ref, tok, cfg), policy, ref, tok


def test_loss_is_dpo_plus_weighted_mean_token_nll_of_chosen():
    learner, policy, ref, tok = _learner(0.1)
    learner._items, _ = learner.encode([_pair(), _pair("I like the cat.", "The cat sleeps.")])
    loss, stats = learner.batch_loss([0, 1])
    total = 0.0
    for e in learner._items:
        def lp(model, resp):
            ids = torch.tensor([e.context + resp])
            with torch.no_grad():
                out = token_logprobs(model(input_ids=ids).logits, ids)[0]
            return out[len(e.context) - 1:]                     # log-probs of the response tokens
        pc, pr, rc, rr = lp(policy, e.chosen), lp(policy, e.rejected), lp(ref, e.chosen), lp(ref, e.rejected)
        h = (pc.sum() - rc.sum()) - (pr.sum() - rr.sum())
        total += -torch.nn.functional.logsigmoid(0.1 * h) + 0.1 * (-pc.mean())
    assert abs(loss.item() - total.item() / 2) < 1e-5
    assert abs(stats["loss"] - stats["dpo_loss"] - 0.1 * stats["nll"]) < 1e-6


def test_two_steps_change_every_parameter(tmp_path):
    learner, policy, _, _ = _learner(0.1)
    before = {n: p.detach().clone() for n, p in policy.named_parameters()}
    summary = learner.fit([_pair(), _pair("I like the cat.", "The cat sleeps.")], tmp_path, progress=False)
    assert summary["steps"] == 2 and torch.isfinite(torch.tensor(summary["last"]["loss"]))
    assert all(not torch.equal(before[n], p) for n, p in policy.named_parameters())
    assert (tmp_path / "policy" / "learner_info.json").read_text().count('"spar_dpo"') == 1


def test_rft_schedule():
    cfg = rft_sft_config(RFTConfig(), 10, SFTConfig())
    assert (cfg.steps, cfg.batch_size, cfg.lr, cfg.min_lr_ratio, cfg.warmup_steps) == (7, 8, 2e-6, 1.0, 0)
    assert rft_sft_config(RFTConfig(epochs=5, batch_size=2, max_steps=3), 100, SFTConfig()).steps == 3
