"""ONI's learner connector on hand-built episode chunks: rewards rewritten with counts and coefficients,
unlabelled = 0, the bootstrap step left alone, the env runner's chunk objects untouched."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("ray.rllib", reason="needs ray's rllib dependencies (the oni extra)")

from ray.rllib.connectors.learner import AddOneTsToEpisodesAndTruncate  # noqa: E402
from ray.rllib.env.single_agent_episode import SingleAgentEpisode  # noqa: E402

from launch.oni_rllib import ONIRewardConnector  # noqa: E402
from rl.oni_rewards import ONIRewardConfig  # noqa: E402

KILL, WALL = "You kill the newt!", "It's a wall."


class FakeClient:
    def __init__(self, table, probs=None):
        self.table, self._probs, self.submitted, self.refreshes = dict(table), probs or {}, [], 0

    def refresh(self):
        self.refreshes += 1

    def submit(self, messages):
        self.submitted.append(list(messages))

    def probs(self, messages):
        return {m: self._probs.get(m, 0.0) for m in messages}


def _episode(messages, rewards, terminated=True):
    """An episode chunk: reset info = messages[0]; transition t leads to the observation with messages[t+1]."""
    counts, infos = {}, []
    for t, m in enumerate(messages):
        counts[m] = counts.get(m, 0) + 1
        infos.append({"message": m, "message_count": counts[m], "episode_end": terminated and t == len(messages) - 1})
    n = len(rewards)
    return SingleAgentEpisode(observations=[np.zeros(2, np.float32)] * (n + 1), actions=[0] * n,
                              rewards=list(rewards), infos=infos, terminated=terminated, len_lookback_buffer=0,
                              observation_space=gym.spaces.Box(-1, 1, (2,)), action_space=gym.spaces.Discrete(2))


def _run(conn, episodes, *, with_bootstrap_step):
    shared = {}
    if with_bootstrap_step:
        AddOneTsToEpisodesAndTruncate()(rl_module=None, batch={}, episodes=episodes, shared_data=shared)
    conn(rl_module=None, batch={}, episodes=episodes, shared_data=shared)
    return [list(np.asarray(e.get_rewards(), dtype=np.float64)) for e in episodes]


@pytest.mark.parametrize("with_bootstrap_step", [False, True])
def test_retrieval_rewrite(with_bootstrap_step):
    cfg = ONIRewardConfig(kind="retrieval", intrinsic_coef=0.4, extrinsic_coef=10.0, count_exponent=3.0)
    client = FakeClient({KILL: 1, WALL: 0})
    conn = ONIRewardConnector(reward_cfg=cfg, client_factory=lambda: client)
    # reset message "", then KILL (n=1), WALL, KILL (n=2), "new" (unlabelled), and the goal reward 1
    ep = _episode(["", KILL, WALL, KILL, "new"], [0.0, 0.0, 0.0, 1.0])
    original = ep
    episodes = [ep]
    (out,) = _run(conn, episodes, with_bootstrap_step=with_bootstrap_step)
    expected = [0.4, 0.0, 0.4 / 8, 10.0]
    np.testing.assert_allclose(out[:4], expected, rtol=1e-6)
    if with_bootstrap_step:
        assert out[4] == 0.0 and len(out) == 5        # the bootstrap step keeps reward 0
    assert list(original.get_rewards()[:4]) == [0.0, 0.0, 0.0, 1.0]   # the runner's chunk is untouched
    assert client.submitted == [["new"]] and client.refreshes == 1
    assert conn._running == {}                         # the episode ended in this chunk
    _run(conn, [_episode(["", "new"], [0.0])], with_bootstrap_step=False)
    assert client.submitted == [["new"]]              # not submitted twice


def test_extrinsic_only_and_classification():
    ep = _episode(["", KILL, KILL], [0.5, 0.0])
    none = ONIRewardConnector(reward_cfg=ONIRewardConfig(kind="none", extrinsic_coef=10.0),
                              client_factory=lambda: FakeClient({KILL: 1}))
    np.testing.assert_allclose(_run(none, [ep], with_bootstrap_step=False)[0], [5.0, 0.0])
    cls = ONIRewardConnector(reward_cfg=ONIRewardConfig(kind="classification", intrinsic_coef=1.0, extrinsic_coef=0.0),
                             client_factory=lambda: FakeClient({}, probs={KILL: 0.9}))
    np.testing.assert_allclose(_run(cls, [_episode(["", KILL, KILL, WALL], [0.0, 0.0, 0.0])],
                                    with_bootstrap_step=False)[0], [1.0, 0.125, 0.0])


class _Metrics:
    def __init__(self):
        self.values = {}

    def log_value(self, key, value, **kw):
        self.values[key] = value


def test_intrinsic_return_spans_chunks():
    cfg = ONIRewardConfig(kind="retrieval", intrinsic_coef=1.0, extrinsic_coef=0.0, count_exponent=3.0)
    conn = ONIRewardConnector(reward_cfg=cfg, client_factory=lambda: FakeClient({KILL: 1}))
    first = _episode(["", KILL, WALL], [0.0, 0.0], terminated=False)      # chunk 1: r_int 1, 0
    metrics = _Metrics()
    conn(rl_module=None, batch={}, episodes=[first], shared_data={}, metrics=metrics)
    assert ("oni", "intrinsic_return_mean") not in metrics.values and conn._running == {first.id_: 1.0}
    second = first.cut()                                                   # its successor chunk
    second.add_env_step(np.zeros(2, np.float32), 0, 0.0, infos={"message": KILL, "message_count": 2,
                                                                 "episode_end": True}, terminated=True)
    conn(rl_module=None, batch={}, episodes=[second], shared_data={}, metrics=metrics)
    assert metrics.values[("oni", "intrinsic_return_mean")] == pytest.approx(1.125)
    assert metrics.values[("oni", "label_coverage")] == 1.0
