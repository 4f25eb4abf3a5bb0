"""Value functions (search/evaluators.py): outcome reward, self-evaluation, learned-value adapter."""
import math

import pytest
from search_fakes import CannedGenerator

from envs.base import Problem
from search.evaluators import (LearnedValue, OutcomeValue, SearchState, SelfEvalConfig, SelfEvalValue,
                               TerminalValue, ValueFn)

PROB = Problem("t/0", "toy", "What is 2+3?", "5", solution="2+3=5\n#### 5")


def state(response, depth, terminal, prompt="Q: What is 2+3?\nA:\n"):
    return SearchState(PROB, prompt, response, depth, terminal)


class ConstValue:
    uses_reference = False

    def __init__(self, v):
        self.v, self.seen = v, []

    def values(self, states):
        self.seen.extend(states)
        return [self.v] * len(states)


def test_outcome_value_grades_terminals_only():
    fn = OutcomeValue()
    got = fn.values([state("2+3=5\n#### 5", 2, True), state("2+3=6\n#### 6", 2, True), state("2+3=5\n", 1, False)])
    assert got == [1.0, 0.0, 0.0]
    assert fn.uses_reference and isinstance(fn, ValueFn)


def test_outcome_value_with_estimate_modes():
    est = ConstValue(0.25)
    states = [state("2+3=5\n#### 5", 2, True), state("2+3=5\n", 1, False)]
    assert OutcomeValue(est).values(states) == [1.0, 0.25]
    assert [s.response for s in est.seen] == ["2+3=5\n"]          # the estimate is not asked at terminals
    assert OutcomeValue(ConstValue(0.25), terminal=TerminalValue.OUTCOME_PLUS_ESTIMATE).values(states) == [1.25, 0.25]


def self_eval(cfg=None, lp_correct=-0.5, lp_incorrect=-1.5):
    fn = SelfEvalValue(CannedGenerator({}), cfg or SelfEvalConfig())
    s = state("2+3=5\n", 1, False)
    p = fn.prompt(s)
    fn.generator.scores = {(p, " correct"): (lp_correct,), (p, " incorrect"): (lp_incorrect, 0.0)}
    return fn, s


def test_self_eval_two_option_probability_and_depth_penalty():
    fn, s = self_eval()
    expect = 1 / (1 + math.exp(-1.0))                             # p_c / (p_c + p_i) with lp gap 1
    assert fn.values([s]) == [pytest.approx(expect, abs=1e-15)]
    deep = SearchState(PROB, s.prompt, s.response, 6, False)      # parent depth 5: divide by 5 - 3
    fn.generator.scores[(fn.prompt(deep), " correct")] = (-0.5,)
    fn.generator.scores[(fn.prompt(deep), " incorrect")] = (-1.5,)
    assert fn.values([deep]) == [pytest.approx(expect / 2, abs=1e-15)]
    assert fn.generator.stats.calls == 2                          # one logprobs call per values()
    nopen, _ = self_eval(SelfEvalConfig(depth_penalty=False))
    nopen.generator.scores = fn.generator.scores
    assert nopen.values([deep]) == [pytest.approx(expect, abs=1e-15)]


def test_self_eval_prompt_hides_the_reference_unless_training():
    fn, s = self_eval()
    assert "5\n" not in fn.prompt(s).split("Proposed")[0] and not fn.uses_reference
    assert fn.prompt(s) == ("Question: What is 2+3?\nProposed solution, possibly unfinished:\n2+3=5\n\n"
                            "Is every step of the proposed solution right so far? Answer correct or incorrect.\n"
                            "Verdict:")
    hinted, _ = self_eval(SelfEvalConfig(show_reference=True))
    assert "Reference answer: 5\n" in hinted.prompt(s) and hinted.uses_reference


def test_self_eval_config_validation():
    with pytest.raises(ValueError):
        SelfEvalConfig(template="no fields")
    with pytest.raises(ValueError):
        SelfEvalConfig(correct=" yes", incorrect=" yes")


def test_learned_value_scores_prompt_plus_response():
    class PrefixModel:
        def __init__(self):
            self.seen = []

        def values(self, prefixes):
            self.seen.extend(prefixes)
            return [len(p) / 100 for p in prefixes]

    model = PrefixModel()
    fn = LearnedValue(model)
    got = fn.values([state("2+3=5\n", 1, False, prompt="Q:\n")])
    assert model.seen == ["Q:\n2+3=5\n"] and got == [0.09] and not fn.uses_reference
    assert fn.values([]) == []


def test_self_eval_on_a_real_tiny_model(tiny_policy_dir):
    from reasoner.generation import GeneratorConfig
    from reasoner.hf_backend import HFGenerator
    from reasoner.loading import load_policy
    model, tok = load_policy(tiny_policy_dir, "cpu")
    gen = HFGenerator(model, tok, GeneratorConfig())
    # the tiny word vocabulary has no "correct": score option words it does have
    fn = SelfEvalValue(gen, SelfEvalConfig(template="Q: {question}\n{reference}{response}", correct=" has",
                                           incorrect=" gives"))
    vals = fn.values([state("2+3=5\n", 1, False), state("2+3=5\n#### 5", 2, True)])
    assert len(vals) == 2 and all(0.0 < v < 1.0 for v in vals) and gen.stats.calls == 1


def test_self_eval_refuses_options_the_tokenizer_cannot_express(trained_policy_dir):
    import pytest as _pytest

    from envs.arith import load_arith
    from reasoner.hf_backend import HFGenerator
    from reasoner.loading import load_policy
    from search.evaluators import SearchState, SelfEvalValue

    model, tok = load_policy(trained_policy_dir, "cpu")
    p = load_arith("test", 1)[0]
    state = SearchState(p, "Q: " + p.question + "\nA:\n", "3+4=7\n", 1, False)
    with _pytest.raises(ValueError, match="tokenize identically"):
        SelfEvalValue(HFGenerator(model, tok)).values([state])


def test_mixture_value_is_the_weighted_sum():
    from search.evaluators import MixtureValue

    class Const:
        def __init__(self, v, ref=False):
            self.v, self.uses_reference = v, ref

        def values(self, states):
            return [self.v * (i + 1) for i in range(len(states))]

    mix = MixtureValue([(Const(0.5), 0.25), (Const(0.2), 0.75)])
    assert mix.values([None, None]) == pytest.approx([0.25 * 0.5 + 0.75 * 0.2, 0.25 * 1.0 + 0.75 * 0.4])
    assert not mix.uses_reference and MixtureValue([(Const(1.0, ref=True), 1.0)]).uses_reference
    with pytest.raises(ValueError):
        MixtureValue([])


def test_likelihood_value_is_the_geometric_mean_token_probability():
    from search.evaluators import LikelihoodValue
    p = "Q: 3+4?\nA:\n"
    gen = CannedGenerator({}, scores={(p, "3+4=7\n"): (-0.1, -0.3), (p, "3+4=8\n"): (-0.1, -2.3, -0.6)})
    problem = Problem("p", "toy", "3+4?", "7")
    states = [SearchState(problem, p, r, 1, False) for r in ("3+4=7\n", "3+4=8\n", "")]
    v = LikelihoodValue(gen).values(states)
    assert v == pytest.approx([math.exp(-0.2), math.exp(-1.0), 1.0])   # mean log p; empty response = 1
    assert gen.stats.calls == 1 and not LikelihoodValue.uses_reference
