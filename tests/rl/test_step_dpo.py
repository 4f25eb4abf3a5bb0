"""Step-DPO learner smoke tests on a tiny Qwen2: a few optimizer steps, checkpoints, resume, LoRA."""
from __future__ import annotations

import json
import math

import pytest
import torch

from rl.learners.step_dpo import StepDPOConfig, StepDPOLearner


def _cfg(**kw) -> StepDPOConfig:
    base = dict(lr=1e-2, batch_size=2, grad_accum=2, max_steps=3, warmup_ratio=0.0, device="cpu",
                save_every=0, max_len=64)
    return StepDPOConfig(**{**base, **kw})


def _snapshot(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_step_dpo_smoke_trains_every_parameter_and_leaves_reference(make_model, tok, pairs, tmp_path):
    policy, ref = make_model(0), make_model(0)
    ref_before = _snapshot(ref)
    learner = StepDPOLearner(policy, ref, tok, _cfg())
    before = _snapshot(learner.policy)
    summary = learner.fit(pairs, tmp_path, progress=False)
    assert summary["steps"] == 3 and summary["pairs"] == 3 and summary["skipped"] == 0
    assert math.isfinite(summary["last"]["loss"])
    changed = {n: not torch.equal(p, before[n]) for n, p in learner.policy.named_parameters() if p.requires_grad}
    assert all(changed.values()), [n for n, c in changed.items() if not c]
    assert all(torch.equal(p, ref_before[n]) for n, p in ref.named_parameters())
    assert not any(p.requires_grad for p in ref.parameters())
    # outputs: HF checkpoint (loads as a plain causal LM), TensorBoard events, resumable state
    from transformers import AutoModelForCausalLM, AutoTokenizer
    loaded = AutoModelForCausalLM.from_pretrained(str(tmp_path / "policy"))
    assert all(torch.equal(p, dict(learner.policy.named_parameters())[n]) for n, p in loaded.named_parameters())
    assert AutoTokenizer.from_pretrained(str(tmp_path / "policy"))("ab")["input_ids"] == [3, 4]
    info = json.loads((tmp_path / "policy" / "learner_info.json").read_text())
    assert (info["algo"], info["steps"], info["policy_version"]) == ("step_dpo", 3, 2)
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert (tmp_path / "state" / "training_state.pt").exists()


def test_step_dpo_learns_the_preference(make_model, tok, pairs):
    learner = StepDPOLearner(make_model(0), make_model(0), tok, _cfg(max_steps=8, batch_size=3, grad_accum=1))
    learner.fit(pairs, progress=False)
    # at the start policy == reference: h = 0 and every pair's loss is log 2, whatever its eps
    with torch.no_grad():
        loss, stats = learner.batch_loss([0, 1, 2])
    assert loss.item() < math.log(2) - 0.01
    assert stats["margin"] > 0.05


def test_step_dpo_resume_equals_uninterrupted_run(make_model, tok, pairs, tmp_path):
    full = StepDPOLearner(make_model(0), make_model(0), tok, _cfg(max_steps=3))
    full.fit(pairs, tmp_path / "full", progress=False)
    part = StepDPOLearner(make_model(0), make_model(0), tok, _cfg(max_steps=3, save_every=1))
    real_step = part.train_step

    def crash_at_third_step():
        if part.step == 2:
            raise KeyboardInterrupt   # the process dies after the state of step 2 was saved
        return real_step()

    part.train_step = crash_at_third_step
    with pytest.raises(KeyboardInterrupt):
        part.fit(pairs, tmp_path / "part", progress=False)
    assert not (tmp_path / "part" / "policy").exists()
    resumed = StepDPOLearner(make_model(0), make_model(0), tok, _cfg(max_steps=3))
    summary = resumed.fit(pairs, tmp_path / "part", progress=False)
    assert (summary["resumed_from"], summary["steps"]) == (2, 3)
    for (n, a), b in zip(full.policy.named_parameters(), resumed.policy.parameters()):
        assert torch.allclose(a, b, atol=1e-6), n


def test_step_dpo_lora_trains_adapters_only_and_exports_merged(make_model, tok, pairs, tmp_path):
    pytest.importorskip("peft")
    from reasoner.lora import LoraOptions
    from transformers import AutoModelForCausalLM
    learner = StepDPOLearner(make_model(0), make_model(0), tok,
                             _cfg(lora=LoraOptions(enabled=True, rank=2, alpha=4), max_steps=2))
    trainable = [n for n, p in learner.policy.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    before = _snapshot(learner.policy)
    learner.fit(pairs, tmp_path, progress=False)
    for n, p in learner.policy.named_parameters():
        assert torch.equal(p, before[n]) != ("lora_" in n), n     # adapters moved, base weights did not
    ids = torch.tensor([[19, 44, 39, 31, 41, 32, 40]])
    merged = AutoModelForCausalLM.from_pretrained(str(tmp_path / "policy"))
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, learner.policy(input_ids=ids).logits, atol=1e-5)


def test_step_dpo_errors(make_model, tok, pairs):
    learner = StepDPOLearner(make_model(0), make_model(0), tok, _cfg())
    with pytest.raises(ValueError, match="at least one"):
        learner.fit([], progress=False)
    with pytest.raises(ValueError, match="longer than max_len=4"):
        StepDPOLearner(make_model(0), make_model(0), tok, _cfg(max_len=4)).fit(pairs, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        StepDPOConfig(batch_size=0)
