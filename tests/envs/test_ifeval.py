"""IFEval scoring goldens: lm-eval's checkers, offline Punkt data, strict vs loose, determinism."""
from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from envs.ifeval import DATA_FILE, PUNKT_FILES, check_response, ensure_punkt, load_ifeval, punkt_dir, score_responses

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def prompts():
    return {p.key: p for p in load_ifeval()}


def test_vendored_file_is_the_541_prompts():
    import hashlib
    assert hashlib.sha256(DATA_FILE.read_bytes()).hexdigest() == \
        "67ffeee0fcb87c317c5b08a2de85557b4a7e96ada6178aa645b4954fe4b53d49"
    ps = load_ifeval()
    assert len(ps) == 541 and len({p.key for p in ps}) == 541
    assert sum(len(p.instruction_id_list) for p in ps) == 834


def test_punkt_written_from_the_wheel_and_found(tmp_path, monkeypatch):
    import nltk
    monkeypatch.setattr(nltk.data, "path", list(nltk.data.path))
    root = ensure_punkt(tmp_path)
    assert root == tmp_path.resolve()
    assert sorted(f.name for f in punkt_dir(tmp_path).iterdir()) == sorted(PUNKT_FILES)
    assert Path(str(nltk.data.find("tokenizers/punkt_tab/english/"))).resolve() == punkt_dir(tmp_path).resolve()
    tok = nltk.tokenize.PunktTokenizer("english")
    assert tok.tokenize("Mr. Smith went to Washington. He arrived at 5 p.m. on Friday. It rained.") == \
        ["Mr. Smith went to Washington.", "He arrived at 5 p.m. on Friday.", "It rained."]


def test_lm_eval_checkers_use_the_project_punkt(prompts):
    import nltk
    check_response(prompts[1001], "warm up")       # imports lm-eval's checkers
    from lm_eval.tasks.ifeval import instructions_util
    found = Path(str(nltk.data.find("tokenizers/punkt_tab/english/"))).resolve()
    assert found == punkt_dir().resolve()           # not a download (lm-eval prints success regardless)
    assert instructions_util.count_sentences("Dr. No is here. He waits. Go now!") == 3
    assert instructions_util.count_words("one two, three") == 3


@pytest.mark.parametrize("key,response,strict,loose", [
    (1001, "Day one we land in Tokyo and feast on ramen", (True,), (True,)),
    (1001, "Day one, we land in Tokyo", (False,), (False,)),
    (1051, "dear friend, please go and vote.", (True,), (True,)),
    (1051, "Dear friend, please go and vote.", (False,), (False,)),
    (122, 'Sure! Here it is:\n"The internet changed how we live and learn."', (False,), (True,)),
    (2195, "* Sit.\n* Stay.\n* Fetch.", (True,), (True,)),
    (2195, "* Sit.\n* Stay.", (False,), (False,)),
    (1220, "Two cups of tea.\nIs there anything else I can help with?", (True,), (True,)),
    (1220, "Two cups of tea.\nIs there anything else I can help with?\nBye", (False,), (True,)),
    (2314, "Here are names:\n* **Oreo**\n* Domino\n* Panda", (True,), (True,)),
    (1001, "", (False,), (False,)),
])
def test_golden_verdicts(prompts, key, response, strict, loose):
    v = check_response(prompts[key], response)
    assert v.strict == strict and v.loose == loose


def test_metrics_aggregate_prompt_and_instruction_level(prompts):
    ps = [prompts[1001], prompts[122], prompts[2195]]
    rs = ["No commas here", 'Sure:\n"wrapped"', "* a\n* b"]
    res = score_responses(ps, rs)
    assert (res["prompt_strict"], res["prompt_loose"]) == (1 / 3, 2 / 3)
    assert (res["instruction_strict"], res["instruction_loose"]) == (1 / 3, 2 / 3)
    assert res["average"] == pytest.approx(0.5)
    assert res["per_type"]["startend:quotation"] == {"n": 1, "strict": 0.0, "loose": 1.0}


def test_seeded_determinism_for_random_fallback_letters(prompts):
    p = prompts[1122]   # letter "#" is not a letter: the checker draws one from `random`
    assert p.kwargs[p.instruction_id_list.index("keywords:letter_frequency")]["letter"] == "#"
    text = "abcdefghijklmnopqrstuvwxyz " * 3
    random.seed(1)
    before = random.random()
    random.seed(1)
    a = check_response(p, text)
    assert random.random() == before                # the global RNG state is restored
    random.seed(12345)
    b = check_response(p, text)
    assert a == b


def _run(*args):
    return subprocess.run([sys.executable, "-m", "launch.evaluate", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_cli_scores_a_responses_file(tmp_path):
    f = tmp_path / "r.jsonl"
    f.write_text(json.dumps({"key": 1001, "response": "No commas at all"}) + "\n"
                 + json.dumps({"key": 1051, "response": "Dear friend, vote."}) + "\n")
    out = tmp_path / "o.json"
    r = _run("--task", "ifeval", "--responses", str(f), "--out", str(out))
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    assert {"prompt_strict", "prompt_loose", "instruction_strict", "instruction_loose", "per_type"} <= set(res)
    assert res["prompt_strict"] == 0.5 and res["n_prompts"] == 2
    rows = [json.loads(x) for x in out.with_suffix(".responses.jsonl").read_text().splitlines()]
    assert [(x["key"], x["strict"]) for x in rows] == [(1001, [True]), (1051, [False])]
    f.write_text(json.dumps({"key": 999999, "response": "x"}) + "\n")
    r = _run("--task", "ifeval", "--responses", str(f), "--out", str(out))
    assert r.returncode == 2 and "999999" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_cli_generates_with_a_model(tmp_path):
    out = tmp_path / "m.json"
    policy = ROOT / "tests" / "data" / "tiny_arith_policy"
    r = _run("--task", "ifeval", "--model", str(policy), "--limit", "3", "--max-tokens", "8", "--out", str(out))
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    assert res["n_prompts"] == 3 and res["method"] == "greedy" and res["generated_tokens"] <= 24
