"""Ray actor pool for environments: same episodes as the local pool (CPU smoke test, loopback)."""
from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def ray_cluster():
    pytest.importorskip("minihack", reason="needs the envs extra (pip install -e '.[envs]')")
    ray = pytest.importorskip("ray")
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_pool_matches_local_pool(ray_cluster):
    from envs.interactive import EnvGroup
    from envs.nethack import MenuFormat, NetHackConfig, NetHackEnv
    from launch.env_actors import RayEnvPool
    from search.agent import AgentConfig, RandomPolicy, run_episodes

    task = "MiniHack-Room-5x5-v0"
    fmt, cfg, seeds = MenuFormat(task), AgentConfig(step_rewards=True), [0, 1, 2]

    def envs():
        return [NetHackEnv(NetHackConfig(task=task, max_steps=8), episode=k) for k in range(3)]

    local = run_episodes(RandomPolicy(fmt, seed=5), EnvGroup(envs()), fmt, cfg, seeds=seeds)
    pool = RayEnvPool(envs(), num_actors=2)
    assert len(pool) == 3
    assert pool.ids() == [(f"nethack/{task}/{k}", task) for k in range(3)]
    remote = run_episodes(RandomPolicy(fmt, seed=5), pool, fmt, cfg, seeds=seeds)
    assert [e.trajectory for e in remote] == [e.trajectory for e in local]
    assert [e.stats for e in remote] == [e.stats for e in local]
    # scatter/gather keeps the caller's order across actors (env 0 and 2 live on actor 0, 1 on 1)
    first = pool.reset([2, 1, 0], [0, 1, 2])
    out = pool.step([1, 2, 0], ["nowhere", "north", "south"])
    assert [r.invalid for r in out] == [True, False, False]
    assert out[0].text.split("\n", 1)[1] == first[1].text.split("\n", 1)[1]
    assert [s["steps"] for s in pool.episode_stats([0, 1, 2])] == [1, 1, 1]
    pool.close()
