"""SPaR workers without Ray: one self-play chunk and one evaluation on a random tiny instruct model."""
from __future__ import annotations

import pytest

from launch.config import load_config
from launch.spar_workers import OracleJudge, SparWorker, parse_refine_method


@pytest.fixture(scope="module")
def instruct_model(tmp_path_factory):
    from envs.instruct import vocabulary_words
    from launch.train_sft import INSTRUCT_SYMBOLS
    from reasoner.tiny import TinyModelConfig, build_tiny_model
    from reasoner.tokenizer import build_word_tokenizer
    tok = build_word_tokenizer(vocabulary_words(), extra_tokens=INSTRUCT_SYMBOLS)
    model = build_tiny_model(TinyModelConfig(hidden_size=32, num_heads=2, num_kv_heads=2, intermediate_size=64), tok)
    out = tmp_path_factory.mktemp("instruct_tiny")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


def _cfg(*extra):
    return load_config("configs/spar_smoke.yaml", ["spar.actor_max_tokens=8", "refine.judge_max_tokens=8",
                                                   "refine.refine_max_tokens=8", "eval.max_tokens=8", *extra])


def test_parse_refine_method():
    assert parse_refine_method("refine@3") == 3 and parse_refine_method("greedy") is None
    with pytest.raises(ValueError):
        parse_refine_method("refine@0")


def test_rollout_with_the_oracle_judge_and_evaluate(instruct_model):
    from envs.ifeval import check_strict
    from envs.tasks import load_instruct_problems
    cfg = _cfg("spar.oracle_judge=true")
    problems = load_instruct_problems(cfg.task, "train", 3)
    w = SparWorker(cfg)
    out = w.rollout(problems, instruct_model, instruct_model, 0)
    st = out.stats
    assert st["prompts"] == 3 and st["samples"] == 9 and st["judge_agree"] == 9   # the oracle is the checker
    assert 1 <= st["negatives"] <= 3 and st["sample_pass_checker"] < 9
    assert st["generated_tokens"] > 0 and st["refined_checker"] == st["refined_self"]
    for p in out.pairs:
        assert all(check_strict(next(q for q in problems if q.id == p.problem_id).ifeval(), p.chosen))
    ev = w.evaluate(problems, "refine@1", instruct_model, instruct_model, 0)
    assert ev["n"] == 3 and ev["instructions"] == sum(len(p.constraints) for p in problems)
    assert len(ev["records"]) == 3 and ev["generated_tokens"] > 0


def test_oracle_judge_verdicts():
    from envs.tasks import load_instruct_problems
    p = load_instruct_problems(_cfg().task, "train", 1)[0]
    j = OracleJudge({p.question: p}).judge([(p.question, p.reference), (p.question, "")])
    assert (j[0].label, j[0].value, j[1].label, j[1].value) == (1, 1.0, 0, 0.0)
    assert j[0].critique.endswith("Final Judgement: Yes") and j[1].critique.endswith("Final Judgement: No")
