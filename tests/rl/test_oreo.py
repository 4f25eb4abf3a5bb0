"""OREO learner smoke tests on tiny Qwen2 models: variants, stop-gradients, checkpoints, LoRA,
iterative rounds."""
from __future__ import annotations

import json
import math

import pytest
import torch

from reasoner.records import Trajectory
from reasoner.value_model import ValueModel
from rl.data import collate_trajectories, encode_trajectories, encode_trajectory
from rl.learners.oreo import OREOConfig, OREOLearner, OREOVariant, action_groups


def _cfg(**kw) -> OREOConfig:
    base = dict(policy_lr=1e-2, value_lr=1e-2, batch_size=2, grad_accum=2, max_steps=3, warmup_ratio=0.0,
                device="cpu", save_every=0, max_len=64)
    return OREOConfig(**{**base, **kw})


def _learner(make_model, tok, **kw) -> OREOLearner:
    policy = make_model(0)
    return OREOLearner(policy, make_model(0), ValueModel.from_policy(policy), tok, _cfg(**kw))


def _trainable(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("variant", list(OREOVariant))
def test_oreo_smoke_trains_policy_and_value_leaves_reference(make_model, tok, trajectories, tmp_path, variant):
    learner = _learner(make_model, tok, variant=variant)
    ref_before = {n: p.clone() for n, p in learner.ref.named_parameters()}
    policy_before, value_before = _trainable(learner.policy), _trainable(learner.value)
    summary = learner.fit(trajectories, tmp_path, progress=False)
    assert summary["steps"] == 3
    assert all(math.isfinite(v) for v in summary["last"].values())
    for model, before in ((learner.policy, policy_before), (learner.value, value_before)):
        unchanged = [n for n, p in model.named_parameters() if p.requires_grad and torch.equal(p, before[n])]
        assert not unchanged, unchanged
    assert all(torch.equal(p, ref_before[n]) for n, p in learner.ref.named_parameters())
    # both checkpoints round-trip
    from transformers import AutoModelForCausalLM
    policy = AutoModelForCausalLM.from_pretrained(str(tmp_path / "policy"))
    assert all(torch.equal(p, dict(learner.policy.named_parameters())[n]) for n, p in policy.named_parameters())
    value = ValueModel.from_pretrained(tmp_path / "value")
    states = ["q: 2+3\n", "q: 2+3\n2+3=5\n"]
    assert value.values(states) == pytest.approx(learner.value.values(states), abs=1e-6)
    info = json.loads((tmp_path / "policy" / "learner_info.json").read_text())
    assert (info["algo"], info["policy_version"], info["config"]["variant"]) == ("oreo", 2, variant.value)


def test_oreo_runs_on_qwen2(make_model, tok, trajectories):
    policy = make_model(0, "qwen2")
    learner = OREOLearner(policy, make_model(0, "qwen2"), ValueModel.from_policy(policy), tok, _cfg(max_steps=2))
    before = _trainable(learner.policy)
    summary = learner.fit(trajectories, progress=False)
    assert math.isfinite(summary["last"]["policy_loss"])
    assert all(not torch.equal(p, before[n]) for n, p in _trainable(learner.policy).items())


def test_oreo_value_loss_reaches_only_the_critic_policy_loss_only_the_policy(make_model, tok, trajectories):
    """The stop-gradients of eqs. 8-9 make the summed backward equal to OREO's two separate ones."""
    learner = _learner(make_model, tok)
    with torch.no_grad():   # a non-zero head, so the critic's backbone gets gradients too
        learner.value.value_head.weight.fill_(0.1)
    batch = collate_trajectories([encode_trajectory(t, tok) for t in trajectories], 0)
    grads = {}
    for name in ("value", "policy"):
        learner.policy.zero_grad(set_to_none=True)
        learner.value.zero_grad(set_to_none=True)
        value_loss, policy_loss, kl, _ = learner.losses(batch)
        (value_loss if name == "value" else policy_loss + 0.01 * kl).backward()
        grads[name] = ({n for n, p in learner.policy.named_parameters() if p.grad is not None},
                       {n for n, p in learner.value.named_parameters() if p.grad is not None})
    assert not grads["value"][0] and grads["value"][1]          # critic loss: critic only
    assert grads["policy"][0] and not grads["policy"][1]        # actor loss: policy only


def test_oreo_fresh_critic_starts_at_zero_and_learns_rewards(make_model, tok, trajectories):
    learner = _learner(make_model, tok, max_steps=12, batch_size=3, grad_accum=1)
    batch = collate_trajectories([encode_trajectory(t, tok) for t in trajectories], 0)
    with torch.no_grad():
        assert learner.losses(batch)[3]["v_s0"] == 0.0
        start = learner.losses(batch)[0].item()
    learner.fit(trajectories, progress=False)
    with torch.no_grad():
        end = learner.losses(batch)[0].item()
    assert end < start / 2


def test_oreo_lora_on_both_models(make_model, tok, trajectories, tmp_path):
    pytest.importorskip("peft")
    from reasoner.lora import LoraOptions
    lora = LoraOptions(enabled=True, rank=2, alpha=4)
    learner = _learner(make_model, tok, policy_lora=lora, value_lora=lora, max_steps=2)
    assert all("lora_" in n for n in _trainable(learner.policy))
    assert set(_trainable(learner.value)) - {n for n in _trainable(learner.value) if "lora_" in n} \
        == {"value_head.weight"}
    learner.fit(trajectories, tmp_path, progress=False)
    value = ValueModel.from_pretrained(tmp_path / "value")
    assert value.values(["go\nlook\n"]) == pytest.approx(learner.value.values(["go\nlook\n"]), abs=1e-5)


def test_oreo_iterative_rounds_regenerate_data_with_the_new_policy(make_model, tok, trajectories, tmp_path):
    """Round 1 trains; round 2 samples fresh trajectories from round 1's policy, scores them, and
    trains new learners built from round 1's checkpoints (reference = the original SFT model)."""
    from transformers import AutoModelForCausalLM
    sft = make_model(0)
    r1 = OREOLearner(make_model(0), sft, ValueModel.from_policy(sft), tok, _cfg(max_steps=2))
    r1.fit(trajectories, tmp_path / "r1", progress=False)

    policy = AutoModelForCausalLM.from_pretrained(str(tmp_path / "r1" / "policy"))
    prompt = tok("q: 2+3\n", return_tensors="pt")["input_ids"]
    torch.manual_seed(1)
    with torch.no_grad():
        out = policy.generate(prompt, do_sample=True, max_new_tokens=6, num_return_sequences=4,
                              pad_token_id=0, eos_token_id=1)
    texts = [tok.decode(o[prompt.shape[1]:], skip_special_tokens=True) for o in out]
    fresh = [Trajectory(f"g{i}", r1.policy_version, "sample", "q: 2+3\n", (t or "?",), ("",),
                        float("5" in t)) for i, t in enumerate(texts)]

    r2 = OREOLearner(policy, make_model(0), ValueModel.from_pretrained(tmp_path / "r1" / "value"), tok,
                     _cfg(max_steps=2))
    before = _trainable(r2.policy)
    r2.fit(fresh, tmp_path / "r2", progress=False)
    assert all(not torch.equal(p, before[n]) for n, p in _trainable(r2.policy).items())
    info = json.loads((tmp_path / "r2" / "policy" / "learner_info.json").read_text())
    assert (r1.policy_version, info["policy_version"]) == (2, 3)   # newest data version + 1


def test_oreo_errors(make_model, tok, trajectories):
    bad = [Trajectory("t", 0, "s", "q", ("a",), ("",), -1.0)]
    with pytest.raises(ValueError, match="R in"):
        _learner(make_model, tok).fit(bad, progress=False)
    with pytest.raises(ValueError, match="at least one"):
        _learner(make_model, tok).fit([], progress=False)
    with pytest.raises(ValueError):
        OREOConfig(variant="sentence")


@pytest.mark.parametrize("learner_kind", ["oreo", "step_dpo"])
def test_bf16_compute_keeps_float32_master_weights(make_model, tok, trajectories, pairs, learner_kind):
    """The CUDA default (bf16 autocast, frozen reference in bf16) exercised on CPU."""
    if learner_kind == "oreo":
        learner = _learner(make_model, tok, dtype="bfloat16", max_steps=2)
        summary = learner.fit(trajectories, progress=False)
        trained = [learner.policy, learner.value]
    else:
        from rl.learners.step_dpo import StepDPOConfig, StepDPOLearner
        learner = StepDPOLearner(make_model(0), make_model(0), tok,
                                 StepDPOConfig(dtype="bfloat16", device="cpu", max_steps=2, batch_size=2, grad_accum=1))
        summary = learner.fit(pairs, progress=False)
        trained = [learner.policy]
    assert all(math.isfinite(v) for v in summary["last"].values())
    assert all(p.dtype == torch.float32 for m in trained for p in m.parameters())
    assert all(p.dtype == torch.bfloat16 for p in learner.ref.parameters())


def test_oreo_value_only_keeps_the_policy_fixed(make_model, tok, trajectories, tmp_path):
    learner = _learner(make_model, tok, train_policy=False)
    policy_before = {n: p.clone() for n, p in learner.policy.named_parameters()}
    value_before = _trainable(learner.value)
    summary = learner.fit(trajectories, tmp_path, progress=False)
    assert summary["steps"] == 3 and "policy_grad_norm" not in summary["last"]
    assert all(torch.equal(p, policy_before[n]) for n, p in learner.policy.named_parameters())
    changed = [n for n, p in learner.value.named_parameters() if p.requires_grad and not torch.equal(p, value_before[n])]
    assert changed and all(not p.requires_grad for p in learner.policy.parameters())
    resumed = _learner(make_model, tok, train_policy=False)
    assert resumed.fit(trajectories, tmp_path, progress=False)["steps"] == 3  # resumes from the saved state


def test_oreo_value_only_regresses_on_the_reward_whatever_the_policy(make_model, tok, trajectories):
    """train_policy=False: rho = 0, so the value loss is mean_t (V(s_t) - R)^2, computed here by hand
    from the critic's own outputs, even with a policy that differs from the reference."""
    policy, ref = make_model(0), make_model(1)           # different weights: rho would be non-zero
    learner = OREOLearner(policy, ref, ValueModel.from_policy(policy), tok, _cfg(train_policy=False))
    with torch.no_grad():
        learner.value.value_head.weight.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(0))
    batch = collate_trajectories(encode_trajectories(trajectories, tok, 256)[0], learner.pad_id)
    groups, G = action_groups(batch, OREOVariant.TOKEN)
    value_loss, policy_loss, kl, _ = learner.losses(batch)
    values = learner.value(batch.input_ids, batch.attention_mask)[:, :-1].detach()
    per_seq = []
    for b in range(len(trajectories)):
        states = [j for j in range(groups.shape[1]) if groups[b, j] >= 0]
        per_seq.append(sum((values[b, j] - batch.rewards[b]) ** 2 for j in states) / len(states))
    assert torch.allclose(value_loss, torch.stack(per_seq).mean(), atol=1e-6)
    assert float(policy_loss) == 0.0 and float(kl) == 0.0


def test_oreo_value_only_final_state_regresses_the_finished_response(make_model, tok, trajectories):
    """value_states=final: only each trajectory's last state (the one before its final action token,
    EOS, i.e. the finished response search scores) is regressed on R: loss = mean_b (V(s_last) - R)^2."""
    policy = make_model(0)
    learner = OREOLearner(policy, make_model(0), ValueModel.from_policy(policy), tok,
                          _cfg(train_policy=False, value_states="final"))
    with torch.no_grad():
        learner.value.value_head.weight.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(0))
    batch = collate_trajectories(encode_trajectories(trajectories, tok, 256)[0], learner.pad_id)
    groups, _ = action_groups(batch, OREOVariant.TOKEN)
    value_loss, _, _, _ = learner.losses(batch)
    values = learner.value(batch.input_ids, batch.attention_mask)[:, :-1].detach()
    per_seq = []
    for b in range(len(trajectories)):
        last = max(j for j in range(groups.shape[1]) if groups[b, j] >= 0)   # index of the EOS label
        assert batch.input_ids[b, last + 1] == tok.eos_token_id
        per_seq.append((values[b, last] - batch.rewards[b]) ** 2)
    assert torch.allclose(value_loss, torch.stack(per_seq).mean(), atol=1e-6)
    with pytest.raises(ValueError, match="value-only"):
        _cfg(value_states="final")                     # train_policy=True by default
