"""HF-backend specifics; the Generator contract itself is tested for every backend in
test_generator_contract.py (these tests were split out of it)."""
import pytest
import torch

from envs.arith import load_arith
from reasoner.generation import FinishReason, GeneratorConfig, SamplingParams
from reasoner.hf_backend import HFGenerator
from reasoner.loading import load_policy


@pytest.fixture(scope="module")
def gen(tiny_policy_dir):
    model, tok = load_policy(tiny_policy_dir, "cpu")
    return HFGenerator(model, tok, GeneratorConfig(max_batch_size=64))


@pytest.fixture(scope="module")
def prompts():
    # mixed lengths, so left padding matters
    return ["Q: " + p.question + "\nA:\n" for p in load_arith("test", 6)] + ["Q: Ben has 3 coins.\nA:\n"]


def test_greedy_matches_transformers_generate(gen, prompts):
    out = gen.generate(prompts, SamplingParams(max_tokens=12, temperature=0))
    for prompt, row in zip(prompts, out):
        enc = gen.tokenizer(prompt, return_tensors="pt")   # one at a time: no padding at all
        ref = gen.model.generate(**enc, max_new_tokens=12, do_sample=False, pad_token_id=gen.pad_id)
        expect = ref[0, enc.input_ids.shape[1]:].tolist()
        assert list(row[0].token_ids) == expect[:len(row[0].token_ids)]
        assert row[0].finish_reason in (FinishReason.LENGTH, FinishReason.EOS)


def test_batch_chunking_does_not_change_results(gen, prompts, tiny_policy_dir):
    model, tok = load_policy(tiny_policy_dir, "cpu")
    small = HFGenerator(model, tok, GeneratorConfig(max_batch_size=2))
    a = gen.generate(prompts, SamplingParams(max_tokens=10, temperature=0))
    b = small.generate(prompts, SamplingParams(max_tokens=10, temperature=0))
    assert [r[0].token_ids for r in a] == [r[0].token_ids for r in b]


def test_weight_reload_changes_outputs(tiny_policy_dir, prompts, tmp_path):
    from reasoner.tiny import TinyModelConfig, build_tiny_model
    model, tok = load_policy(tiny_policy_dir, "cpu")
    g = HFGenerator(model, tok)
    before = g.logprobs(prompts[:2], ["3*5=15\n", "#### 4"])
    other = build_tiny_model(TinyModelConfig(hidden_size=32, num_heads=2, num_kv_heads=2, intermediate_size=64),
                             tok, seed=123)
    other.save_pretrained(tmp_path)
    g.load_weights(str(tmp_path))
    after = g.logprobs(prompts[:2], ["3*5=15\n", "#### 4"])
    assert before[0].logprobs != pytest.approx(after[0].logprobs, abs=1e-3)
    assert torch.equal(g.model.model.embed_tokens.weight, other.model.embed_tokens.weight)
