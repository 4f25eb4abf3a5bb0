"""The same inference app deployed with Ray Serve (1 replica, loopback-only local cluster)."""
from __future__ import annotations

import socket
import time

import httpx
import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ray_serve_deployment_answers_like_local(trained_policy_dir):
    import ray
    from ray import serve
    from openai import OpenAI

    from launch.serve import ServeOptions, deploy_ray_serve
    from reasoner.generation import SamplingParams
    from reasoner.hf_backend import HFGenerator
    from reasoner.loading import load_policy

    prompt = "Q: Zoe has 6 cards. She buys 5 more. How many cards does she have?\nA:\n"
    model, tok = load_policy(trained_policy_dir, "cpu")
    expected = HFGenerator(model, tok).generate([prompt], SamplingParams(max_tokens=32, temperature=0))[0][0].text
    port = _free_port()
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    try:
        deploy_ray_serve(ServeOptions(policy=str(trained_policy_dir), device="cpu", api_key="k"), host="127.0.0.1",
                         port=port, replicas=1, num_gpus=0, num_cpus=1, blocking=False)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while httpx.get(f"{url}/health", timeout=5).status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.5)
        client = OpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0, timeout=60)
        assert client.completions.create(model="reasoner", prompt=prompt, max_tokens=32).choices[0].text == expected
        bad = httpx.post(f"{url}/v1/completions", json={"model": "reasoner", "prompt": prompt, "n": -1},
                         headers={"Authorization": "Bearer k"}, timeout=30)
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "n"
        assert httpx.get(f"{url}/v1/models", timeout=30).status_code == 401
    finally:
        serve.shutdown()
        ray.shutdown()
