"""The `Generator` contract (reasoner/generation.py), run against every local backend.

Each contract test is parametrized over the HF backend and the vLLM backend, both on the same
checkpoint (a random tiny policy, `contract_policy_dir`, or the committed trained policy where
outputs must be meaningful). Reference values come from a plain transformers forward pass. The last section
checks the backends against each other on the trained policy (float32): equal greedy outputs, equal
stop handling, log-probabilities within 1e-4.
"""
import pytest
import torch

from envs.arith import load_arith
from reasoner.generation import FinishReason, SamplingParams
from reasoner.loading import load_policy

BACKENDS = ["hf", pytest.param("vllm", marks=pytest.mark.vllm)]


@pytest.fixture(params=BACKENDS)
def gen(request):
    """The backend's generator on the random tiny policy (session-wide, see conftest.py)."""
    return request.getfixturevalue("hf_tiny" if request.param == "hf" else "vllm_tiny")


@pytest.fixture(params=BACKENDS)
def trained_gen(request):
    return request.getfixturevalue("hf_trained" if request.param == "hf" else "vllm_trained")


@pytest.fixture(scope="module")
def ref_model(contract_policy_dir):
    """The tiny policy loaded by transformers, for reference forward passes."""
    return load_policy(contract_policy_dir, "cpu")[0]


@pytest.fixture(scope="module")
def prompts():
    # mixed lengths, so left padding matters
    return ["Q: " + p.question + "\nA:\n" for p in load_arith("test", 6)] + ["Q: Ben has 3 coins.\nA:\n"]


@pytest.fixture(scope="module")
def trained_prompts():
    return ["Q: " + p.question + "\nA:\n" for p in load_arith("test", 32)]


def _manual_logprobs(model, ids_prompt, ids_cont):
    ids = torch.tensor([ids_prompt + ids_cont])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0].float(), -1)
    return [logp[len(ids_prompt) + i - 1, t].item() for i, t in enumerate(ids_cont)]


# ------------------------------------------------------------------------ the contract
def test_n_samples_shape_and_seed(gen, prompts):
    p = SamplingParams(n=3, max_tokens=8, temperature=1.0, seed=7)
    a = gen.generate(prompts[:2], p)
    b = gen.generate(prompts[:2], p)
    assert len(a) == 2 and all(len(r) == 3 for r in a)
    assert [[c.token_ids for c in r] for r in a] == [[c.token_ids for c in r] for r in b]
    c = gen.generate(prompts[:2], SamplingParams(n=3, max_tokens=8, temperature=1.0, seed=8))
    assert [[x.token_ids for x in r] for r in a] != [[x.token_ids for x in r] for r in c]
    assert len({x.token_ids for x in a[0]}) > 1, "samples of one prompt should differ"


def test_same_prompt_twice_in_one_call_gets_different_samples(gen, prompts):
    out = gen.generate([prompts[0], prompts[0]], SamplingParams(n=2, max_tokens=8, temperature=1.0, seed=3))
    assert len({c.token_ids for row in out for c in row}) == 4


def test_greedy_n_copies_and_length_finish(gen, prompts):
    out = gen.generate(prompts[:1], SamplingParams(max_tokens=5, temperature=0))[0][0]
    assert out.finish_reason == FinishReason.LENGTH and out.num_tokens == 5 and len(out.logprobs) == 5
    assert out.stop_reason is None
    rows = gen.generate(prompts[:2], SamplingParams(n=3, max_tokens=5, temperature=0))
    assert [len(r) for r in rows] == [3, 3] and len({c.token_ids for c in rows[1]}) == 1
    for c in rows[0]:   # batch padding (HF) may move log-probs in the last float32 digits
        assert (c.token_ids, c.text, c.finish_reason) == (out.token_ids, out.text, out.finish_reason)
        assert list(c.logprobs) == pytest.approx(out.logprobs, abs=1e-5)


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


def test_sampled_logprobs_are_raw_model_logprobs(gen, ref_model, prompts):
    out = gen.generate(prompts[:3], SamplingParams(n=2, max_tokens=6, temperature=1.7, seed=1))
    for prompt, row in zip(prompts[:3], out):
        p_ids = gen.tokenizer(prompt)["input_ids"]
        for c in row:
            assert list(c.logprobs) == pytest.approx(_manual_logprobs(ref_model, p_ids, list(c.token_ids)), abs=1e-4)


def test_scoring_matches_manual_forward(gen, ref_model, prompts):
    conts = ["3*5=15\n15+2=17\n#### 17", " Then he sells 4.", "#### 9"]
    scored = gen.logprobs(prompts[:3], conts)
    for prompt, cont, s in zip(prompts[:3], conts, scored):
        c_ids = gen.tokenizer(cont, add_special_tokens=False)["input_ids"]
        assert list(s.token_ids) == c_ids
        assert list(s.logprobs) == pytest.approx(_manual_logprobs(ref_model, gen.tokenizer(prompt)["input_ids"], c_ids),
                                                 abs=1e-4)
    empty = gen.logprobs(prompts[:2], ["", "#### 9"])
    alone = gen.logprobs(prompts[1:2], ["#### 9"])[0]
    assert empty[0].token_ids == () and empty[0].logprobs == ()
    assert empty[1].token_ids == alone.token_ids and list(empty[1].logprobs) == pytest.approx(alone.logprobs, abs=1e-5)
    with pytest.raises(ValueError):
        gen.logprobs(prompts[:2], conts[:1])


def test_top_k_one_is_greedy(gen, prompts):
    g = gen.generate(prompts, SamplingParams(max_tokens=8, temperature=0))
    k1 = gen.generate(prompts, SamplingParams(max_tokens=8, temperature=1.0, top_k=1, seed=0))
    p0 = gen.generate(prompts, SamplingParams(max_tokens=8, temperature=1.0, top_p=1e-6, seed=0))
    assert [r[0].token_ids for r in g] == [r[0].token_ids for r in k1] == [r[0].token_ids for r in p0]


def test_trained_policy_ends_with_eos(trained_gen):
    probs = load_arith("test", 8)
    out = trained_gen.generate(["Q: " + p.question + "\nA:\n" for p in probs], SamplingParams(max_tokens=64, temperature=0))
    for row in out:
        c = row[0]
        assert c.finish_reason == FinishReason.EOS and c.token_ids[-1] == trained_gen.tokenizer.eos_token_id
        assert c.stop_reason is None
        assert "####" in c.text.splitlines()[-1]


def test_stats_count_tokens_and_calls(gen, prompts):
    before = gen.stats.snapshot()
    out = gen.generate(prompts[:2], SamplingParams(n=2, max_tokens=4, temperature=1.0))
    used = gen.stats.since(before)
    assert used.calls == 1 and used.prompts == 2
    assert used.generated_tokens == sum(c.num_tokens for r in out for c in r)
    assert used.prompt_tokens == sum(len(gen.tokenizer(p)["input_ids"]) for p in prompts[:2])


def test_prompt_too_long_is_rejected(gen):
    with pytest.raises(ValueError, match="max_model_len"):
        gen.generate(["Q:" + " Ben" * 2000], SamplingParams(max_tokens=4))
    with pytest.raises(ValueError, match="max_model_len"):
        gen.logprobs(["Q:"], [" Ben" * 2000])
    with pytest.raises(TypeError):
        gen.generate("Q: a bare string", SamplingParams())


def test_weight_reload_changes_outputs(gen, ref_model, prompts, contract_policy_dir, contract_tiny_config,
                                      word_tokenizer, tmp_path):
    """load_weights(dir) serves the new weights (every layer, the tied head too); reloading the old ones restores."""
    from reasoner.tiny import build_tiny_model
    conts = ["3*5=15\n", "#### 4"]
    before = gen.logprobs(prompts[:2], conts)
    other = build_tiny_model(contract_tiny_config, word_tokenizer, seed=123)
    other.save_pretrained(tmp_path)
    try:
        gen.load_weights(str(tmp_path))
        after = gen.logprobs(prompts[:2], conts)
        greedy = gen.generate(prompts[:1], SamplingParams(max_tokens=6, temperature=0))[0][0]
    finally:
        gen.load_weights(str(contract_policy_dir))
    assert before[0].logprobs != pytest.approx(after[0].logprobs, abs=1e-3)
    for prompt, cont, s in zip(prompts[:2], conts, after):
        c_ids = list(s.token_ids)
        assert list(s.logprobs) == pytest.approx(_manual_logprobs(other, gen.tokenizer(prompt)["input_ids"], c_ids), abs=1e-4)
    p_ids = gen.tokenizer(prompts[0])["input_ids"]
    with torch.no_grad():
        expect = other.generate(torch.tensor([p_ids]), max_new_tokens=6, do_sample=False,
                                pad_token_id=word_tokenizer.pad_token_id)[0, len(p_ids):].tolist()
    assert list(greedy.token_ids) == expect[:len(greedy.token_ids)]
    restored = gen.logprobs(prompts[:2], conts)
    assert [s.logprobs for s in restored] == [pytest.approx(s.logprobs, abs=1e-5) for s in before]


def test_update_weights_from_state_dict(gen, ref_model, prompts):
    sd = {k: v + 0.01 * torch.randn_like(v) if k.endswith("proj.weight") else v for k, v in ref_model.state_dict().items()}
    other = type(ref_model)(ref_model.config).eval()
    other.load_state_dict(sd)
    try:
        gen.update_weights(sd)
        s = gen.logprobs(prompts[:1], ["3*5=15\n"])[0]
    finally:
        gen.update_weights(ref_model.state_dict())
    expect = _manual_logprobs(other, gen.tokenizer(prompts[0])["input_ids"], list(s.token_ids))
    assert list(s.logprobs) == pytest.approx(expect, abs=1e-4)
    assert list(s.logprobs) != pytest.approx(_manual_logprobs(ref_model, gen.tokenizer(prompts[0])["input_ids"],
                                                              list(s.token_ids)), abs=1e-3)
    with pytest.raises(ValueError, match="do not match"):
        gen.update_weights({"model.nonexistent.weight": torch.zeros(2)})


# ------------------------------------------------------------------------ HF vs vLLM
@pytest.mark.vllm
def test_backends_agree_on_greedy_outputs(hf_trained, vllm_trained, trained_prompts):
    params = SamplingParams(max_tokens=96, temperature=0)
    a, b = hf_trained.generate(trained_prompts, params), vllm_trained.generate(trained_prompts, params)
    for x, y in zip(a, b):
        x, y = x[0], y[0]
        assert (x.token_ids, x.text, x.finish_reason, x.stop_reason) == (y.token_ids, y.text, y.finish_reason, y.stop_reason)
        assert list(x.logprobs) == pytest.approx(list(y.logprobs), abs=1e-4)


@pytest.mark.vllm
@pytest.mark.parametrize("stop", [("\n",), ("=",), ("5\n", "####"), ("\n####",), ("+",)])
def test_backends_agree_on_stop_handling(hf_trained, vllm_trained, trained_prompts, stop):
    params = SamplingParams(max_tokens=40, temperature=0, stop=stop)
    a, b = hf_trained.generate(trained_prompts, params), vllm_trained.generate(trained_prompts, params)
    got = [(y[0].token_ids, y[0].text, y[0].finish_reason, y[0].stop_reason) for y in b]
    assert [(x[0].token_ids, x[0].text, x[0].finish_reason, x[0].stop_reason) for x in a] == got
    assert any(r[2] == FinishReason.STOP for r in got)


@pytest.mark.vllm
def test_backends_agree_on_scoring(hf_trained, vllm_trained, trained_prompts):
    conts = ["3+4=7\n7*2=14\n#### 14", "#### 5", " Then he has 9 apples.", "1\n"] * 2
    a = hf_trained.logprobs(trained_prompts[:8], conts)
    b = vllm_trained.logprobs(trained_prompts[:8], conts)
    for x, y in zip(a, b):
        assert x.token_ids == y.token_ids
        assert list(x.logprobs) == pytest.approx(list(y.logprobs), abs=1e-4)


@pytest.mark.vllm
def test_vllm_engine_options_and_prefix_cache(vllm_trained, trained_prompts):
    model_config = vllm_trained.llm.llm_engine.model_config
    assert vllm_trained.in_process and vllm_trained.max_len == 512       # cfg 512, the checkpoint has 512 positions
    assert str(model_config.dtype) == "torch.float32" and model_config.logprobs_mode == "raw_logprobs"
    assert vllm_trained.llm.llm_engine.vllm_config.cache_config.enable_prefix_caching
    hits = vllm_trained.prefix_cache_hits
    # a 40-token shared prefix: its first full 32-token block is computed once and reused
    long = trained_prompts[0] + "3+4=7\n7*2=14\n14-3=11\n11+5=16\n"
    assert len(vllm_trained.tokenizer(long)["input_ids"]) >= 40
    vllm_trained.generate([long], SamplingParams(n=4, max_tokens=4, temperature=1.0, seed=0))
    vllm_trained.generate([long] * 4, SamplingParams(max_tokens=4, temperature=0))
    assert vllm_trained.prefix_cache_hits - hits >= 4 * 32
