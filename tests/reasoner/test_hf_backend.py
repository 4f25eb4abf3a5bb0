"""The HF Generator backend honours the Generator contract (reasoner/generation.py)."""
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


def test_n_samples_shape_and_seed(gen, prompts):
    p = SamplingParams(n=3, max_tokens=8, temperature=1.0, seed=7)
    a = gen.generate(prompts[:2], p)
    b = gen.generate(prompts[:2], p)
    assert len(a) == 2 and all(len(r) == 3 for r in a)
    assert [[c.token_ids for c in r] for r in a] == [[c.token_ids for c in r] for r in b]
    c = gen.generate(prompts[:2], SamplingParams(n=3, max_tokens=8, temperature=1.0, seed=8))
    assert [[x.token_ids for x in r] for r in a] != [[x.token_ids for x in r] for r in c]
    assert len({x.token_ids for x in a[0]}) > 1, "samples of one prompt should differ"


def test_length_finish_and_token_count(gen, prompts):
    out = gen.generate(prompts[:1], SamplingParams(max_tokens=5, temperature=0))[0][0]
    assert out.finish_reason == FinishReason.LENGTH and out.num_tokens == 5 and len(out.logprobs) == 5


def test_stop_strings_cut_text_keep_tokens(gen, prompts):
    stop = (" he", "\n")
    out = gen.generate(prompts, SamplingParams(n=4, max_tokens=40, temperature=1.0, stop=stop, seed=3))
    seen_stop = 0
    for row in out:
        for c in row:
            full = gen.tokenizer.decode(list(c.token_ids), skip_special_tokens=True)
            if c.finish_reason == FinishReason.STOP:
                seen_stop += 1
                assert c.stop_reason in stop
                assert full.startswith(c.text + c.stop_reason)
                assert not any(s in c.text for s in stop)
            else:
                assert c.stop_reason is None and not any(s in c.text for s in stop)
    assert seen_stop > 0


def _manual_logprobs(model, ids_prompt, ids_cont):
    ids = torch.tensor([ids_prompt + ids_cont])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0].float(), -1)
    return [logp[len(ids_prompt) + i - 1, t].item() for i, t in enumerate(ids_cont)]


def test_sampled_logprobs_are_raw_model_logprobs(gen, prompts):
    out = gen.generate(prompts[:3], SamplingParams(n=2, max_tokens=6, temperature=1.7, seed=1))
    for prompt, row in zip(prompts[:3], out):
        p_ids = gen.tokenizer(prompt)["input_ids"]
        for c in row:
            assert list(c.logprobs) == pytest.approx(_manual_logprobs(gen.model, p_ids, list(c.token_ids)), abs=1e-4)


def test_scoring_matches_manual_forward(gen, prompts):
    conts = ["3*5=15\n15+2=17\n#### 17", " Then he sells 4.", "#### 9"]
    scored = gen.logprobs(prompts[:3], conts)
    for prompt, cont, s in zip(prompts[:3], conts, scored):
        c_ids = gen.tokenizer(cont, add_special_tokens=False)["input_ids"]
        assert list(s.token_ids) == c_ids
        assert list(s.logprobs) == pytest.approx(_manual_logprobs(gen.model, gen.tokenizer(prompt)["input_ids"], c_ids),
                                                 abs=1e-4)
    with pytest.raises(ValueError):
        gen.logprobs(prompts[:2], conts[:1])


def test_top_k_one_is_greedy(gen, prompts):
    g = gen.generate(prompts, SamplingParams(max_tokens=8, temperature=0))
    k1 = gen.generate(prompts, SamplingParams(max_tokens=8, temperature=1.0, top_k=1, seed=0))
    p0 = gen.generate(prompts, SamplingParams(max_tokens=8, temperature=1.0, top_p=1e-6, seed=0))
    assert [r[0].token_ids for r in g] == [r[0].token_ids for r in k1] == [r[0].token_ids for r in p0]


def test_trained_policy_ends_with_eos(trained_policy_dir):
    model, tok = load_policy(trained_policy_dir, "cpu")
    g = HFGenerator(model, tok)
    probs = load_arith("test", 8)
    out = g.generate(["Q: " + p.question + "\nA:\n" for p in probs], SamplingParams(max_tokens=64, temperature=0))
    for row in out:
        c = row[0]
        assert c.finish_reason == FinishReason.EOS and c.token_ids[-1] == tok.eos_token_id
        assert "####" in c.text.splitlines()[-1]


def test_stats_count_tokens_and_calls(gen, prompts):
    before = gen.stats.snapshot()
    out = gen.generate(prompts[:2], SamplingParams(n=2, max_tokens=4, temperature=1.0))
    used = gen.stats.since(before)
    assert used.calls == 1 and used.prompts == 2
    assert used.generated_tokens == sum(c.num_tokens for r in out for c in r)


def test_prompt_too_long_is_rejected(gen):
    with pytest.raises(ValueError, match="max_model_len"):
        gen.generate(["Q:" + " Ben" * 2000], SamplingParams(max_tokens=4))
    with pytest.raises(TypeError):
        gen.generate("Q: a bare string", SamplingParams())


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
