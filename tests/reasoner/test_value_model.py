"""ValueModel: zero-initialised head, position convention (training == test-time scoring),
batched left-padded scoring, HF-format save/load round trips (plain and LoRA-merged)."""
from __future__ import annotations

import json

import pytest
import torch

from reasoner.records import REWARD_CONVENTION, Trajectory
from reasoner.tiny import TinyModelConfig, build_tiny_model
from reasoner.tokenizer import build_word_tokenizer
from reasoner.value_model import VALUE_CONFIG_FILE, VALUE_HEAD_FILE, ValueModel

PROMPT = "Q: Tom has 3 apples and buys 4 more. How many?\n"
STEPS = ("He buys 4 more.\n", "So 3 + 4 = 7\n", "#### 7")


@pytest.fixture(scope="module")
def tok():
    return build_word_tokenizer(["Tom", "has", "apples", "and", "buys", "more", "How", "many", "He", "So"])


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory, tok):
    path = tmp_path_factory.mktemp("vm") / "policy"
    cfg = TinyModelConfig(hidden_size=16, num_layers=2, num_heads=2, num_kv_heads=2, intermediate_size=32)
    build_tiny_model(cfg, tok, seed=0).save_pretrained(str(path))
    tok.save_pretrained(str(path))
    return path


def _with_hand_set_head(vm: ValueModel) -> ValueModel:
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        vm.value_head.weight.copy_(torch.randn(vm.value_head.weight.shape, generator=g))
    return vm.eval()


def test_fresh_value_model_is_zero_and_copies_the_policy_body(policy_dir, tok):
    from transformers import AutoModelForCausalLM
    vm = ValueModel.from_policy(policy_dir, tok)
    assert torch.count_nonzero(vm.value_head.weight) == 0 and vm.value_head.bias is None
    assert vm.values([PROMPT, PROMPT + STEPS[0]]) == [0.0, 0.0]
    policy = AutoModelForCausalLM.from_pretrained(str(policy_dir))
    assert torch.equal(vm.backbone.embed_tokens.weight, policy.model.embed_tokens.weight)
    in_memory = ValueModel.from_policy(policy, tok)
    assert in_memory.backbone is not policy.model
    assert torch.equal(in_memory.backbone.layers[0].mlp.up_proj.weight, policy.model.layers[0].mlp.up_proj.weight)


def test_position_convention_training_read_equals_test_time_scoring(policy_dir, tok):
    """V(s_k) read in training (index of step k's first token in values[:, :-1]) equals
    `values(prompt + steps[:k])` at test time, which reads the state's last token."""
    from rl.data import collate_trajectories, encode_trajectory
    from rl.losses import group_first_index

    vm = _with_hand_set_head(ValueModel.from_policy(policy_dir, tok))
    short = Trajectory("s", 0, "t", PROMPT, STEPS[:1], ("",), 0.0)
    full = Trajectory("f", 0, "t", PROMPT, STEPS, ("", "", ""), 1.0)
    batch = collate_trajectories([encode_trajectory(short, tok), encode_trajectory(full, tok)], pad_id=0)
    with torch.no_grad():
        values = vm(batch.input_ids, batch.attention_mask)[:, :-1]              # [B, L-1] training read
    first, mask = group_first_index(batch.step_index, 3)
    train_read = values.gather(1, first)[1].tolist()                            # V(s_0), V(s_1), V(s_2)
    states = [PROMPT + "".join(STEPS[:k]) for k in range(3)]
    # whole-string tokenisation gives the same ids as the separate pieces (word-level tokenizer)
    assert tok(states[2])["input_ids"] == batch.input_ids[1, :first[1, 2] + 1].tolist()
    assert vm.values(states) == pytest.approx(train_read, abs=1e-5)
    # V(s_0) sits at the last prompt token, in both rows of the right-padded batch
    n_prompt = len(tok(PROMPT)["input_ids"])
    assert first[:, 0].tolist() == [n_prompt - 1, n_prompt - 1]
    assert values[0, n_prompt - 1].item() == pytest.approx(vm.values([PROMPT])[0], abs=1e-5)
    assert len(set(round(v, 4) for v in train_read)) == 3                        # a real test: values differ


def test_values_batched_left_padding_invariant(policy_dir, tok):
    vm = _with_hand_set_head(ValueModel.from_policy(policy_dir, tok))
    states = [PROMPT, PROMPT + STEPS[0] + STEPS[1], PROMPT + STEPS[0]]
    one_by_one = [vm.values([s])[0] for s in states]
    assert vm.values(states, batch_size=16) == pytest.approx(one_by_one, abs=1e-5)
    assert vm.values(states, batch_size=2) == pytest.approx(one_by_one, abs=1e-5)
    ids = [tok(s)["input_ids"] for s in states]
    assert vm.values_from_ids(ids) == pytest.approx(one_by_one, abs=1e-5)
    assert vm.values([]) == []
    with pytest.raises(ValueError, match="empty"):
        vm.values_from_ids([[]])


def test_save_load_round_trip(policy_dir, tok, tmp_path):
    vm = _with_hand_set_head(ValueModel.from_policy(policy_dir, tok))
    out = vm.save_pretrained(tmp_path / "value")
    for name in ("config.json", "model.safetensors", VALUE_HEAD_FILE, VALUE_CONFIG_FILE, "tokenizer.json"):
        assert (out / name).exists(), name
    info = json.loads((out / VALUE_CONFIG_FILE).read_text())
    assert info["reward_convention"] == REWARD_CONVENTION
    assert "after token j" in info["position_convention"]
    loaded = ValueModel.from_pretrained(out)
    assert loaded.tokenizer is not None
    states = [PROMPT, PROMPT + STEPS[0]]
    assert loaded.values(states) == pytest.approx(vm.values(states), abs=1e-6)
    assert torch.equal(loaded.value_head.weight, vm.value_head.weight)
    with pytest.raises(FileNotFoundError, match="not a value-model directory"):
        ValueModel.from_pretrained(policy_dir)


def test_lora_value_model_saves_merged_weights(policy_dir, tok, tmp_path):
    pytest.importorskip("peft")
    from reasoner.lora import LoraOptions, apply_lora
    vm = _with_hand_set_head(ValueModel.from_policy(policy_dir, tok))
    vm.backbone = apply_lora(vm.backbone, LoraOptions(enabled=True, rank=2, alpha=4))
    with torch.no_grad():   # LoRA B starts at zero; perturb it so the adapters matter
        for name, p in vm.backbone.named_parameters():
            if "lora_B" in name:
                p.add_(0.1)
    states = [PROMPT, PROMPT + STEPS[0]]
    before = vm.values(states)
    loaded = ValueModel.from_pretrained(vm.save_pretrained(tmp_path / "lora_value"))
    assert loaded.values(states) == pytest.approx(before, abs=1e-5)
    plain = _with_hand_set_head(ValueModel.from_policy(policy_dir, tok))
    assert plain.values(states) != pytest.approx(before, abs=1e-3)              # the adapters did change V
    assert not hasattr(loaded.backbone, "peft_config")                          # a plain HF directory
