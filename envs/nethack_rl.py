"""NetHack/MiniHack as gymnasium envs for a neural RL agent, with ONI's episodic message counts.

`make_agent_env(cfg)` builds an NLE or MiniHack task asking NLE only for the observation keys the
agent uses (glyphs, blstats, message: the default key set adds screen descriptions and is
several times slower; environment.md section 3) and wraps it:

- `MessageCountWrapper` decodes the `message` line of every observation and keeps ONI's episodic
  count `n_ep(m)` of each message text (algorithms.md 5.2: reset every episode). It reports both
  through `info` (`info["message"]`, `info["message_count"]`), so the learner can rescore old
  experience with the newest labels: the intrinsic reward of the transition into observation t
  is `label(m_t) / n_ep(m_t)^beta` (`rl.oni_rewards`). The count includes the current sight, so
  a message seen for the first time in the episode has count 1. `info["episode_end"]` marks the
  last step of an episode (terminated or truncated), so per-episode sums can be formed downstream.
- `AgentObservationWrapper` turns the observation into what the policy reads: the glyph ids of
  a `crop` x `crop` window centred on the agent (cells outside the map are `PAD_GLYPH`) and the
  bottom-line statistics (`blstats`, NLE's 27 numbers: position, strength, hit points, depth,
  gold, score, ...), as ONI's encoder does with a crop around the agent plus bottom-line stats
  (algorithms.md 5.6; we use glyph ids instead of rendered tty pixels).

Rewards are the task's own (score deltas for NetHackScore, success for MiniHack); mixing with
the intrinsic reward happens in the learner, never here, so the env loop never waits for labels.
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np

from envs.nethack import AgentEnvConfig

__all__ = ["AgentEnvConfig", "MessageCounter", "MessageCountWrapper", "AgentObservationWrapper",
           "make_agent_env", "crop_glyphs", "PAD_GLYPH", "NUM_GLYPHS", "NUM_BLSTATS"]

NUM_GLYPHS = 5976            # nle.nethack.MAX_GLYPH (fixed by NLE 1.x's glyph table)
PAD_GLYPH = NUM_GLYPHS       # id of "outside the map" in a crop; embeddings need NUM_GLYPHS + 1 rows
NUM_BLSTATS = 27             # len(obs["blstats"]) in NLE 1.x
_OBS_KEYS = ("glyphs", "blstats", "message")


class MessageCounter:
    """Episodic message counts n_ep(m) (reset every episode)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def reset(self) -> None:
        self.counts = {}

    def see(self, message: str) -> int:
        """Count one sight of `message`; returns n_ep(message) including it."""
        n = self.counts.get(message, 0) + 1
        self.counts[message] = n
        return n


def _decode(message: np.ndarray) -> str:
    return bytes(message).split(b"\0", 1)[0].decode("latin-1")


class MessageCountWrapper(gym.Wrapper):
    """Adds `info["message"]` (decoded text) and `info["message_count"]` (n_ep) to every step."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.counter = MessageCounter()

    def _annotate(self, obs, info: dict) -> dict:
        text = _decode(obs["message"])
        return {**info, "message": text, "message_count": self.counter.see(text)}

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.counter.reset()
        return obs, self._annotate(obs, info)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if "end_status" in info:   # NLE's StepStatus enum -> int (RUNNING 0, DEATH 1, TASK_SUCCESSFUL 2)
            info = {**info, "end_status": int(info["end_status"])}
        info = {**info, "episode_end": bool(terminated or truncated)}
        return obs, reward, terminated, truncated, self._annotate(obs, info)


def crop_glyphs(glyphs: np.ndarray, x: int, y: int, crop: int) -> np.ndarray:
    """The `crop` x `crop` window of `glyphs` [21, 79] centred on column x, row y (PAD_GLYPH outside)."""
    h, w = glyphs.shape
    r = crop // 2
    padded = np.full((h + 2 * r, w + 2 * r), PAD_GLYPH, dtype=np.int32)
    padded[r:r + h, r:r + w] = glyphs
    return padded[y:y + crop, x:x + crop].copy()


class AgentObservationWrapper(gym.ObservationWrapper):
    """obs -> {"glyphs": int32 [crop, crop] around the agent, "blstats": float32 [27]}."""

    def __init__(self, env: gym.Env, crop: int):
        super().__init__(env)
        self.crop = crop
        self.observation_space = gym.spaces.Dict({
            "glyphs": gym.spaces.Box(0, PAD_GLYPH, (crop, crop), dtype=np.int32),
            "blstats": gym.spaces.Box(-np.inf, np.inf, (NUM_BLSTATS,), dtype=np.float32),
        })

    def observation(self, obs):
        bl = obs["blstats"]
        return {"glyphs": crop_glyphs(obs["glyphs"], int(bl[0]), int(bl[1]), self.crop),
                "blstats": bl.astype(np.float32)}


def make_agent_env(cfg: AgentEnvConfig, seed: int | None = None) -> gym.Env:
    """The wrapped task (see the module docstring); `seed` seeds its first reset."""
    import nle  # noqa: F401  (registers the NetHack tasks)
    if cfg.task.startswith("MiniHack"):
        import minihack  # noqa: F401  (registers the MiniHack tasks)
    kwargs = {"observation_keys": _OBS_KEYS}
    if cfg.max_episode_steps:
        kwargs["max_episode_steps"] = cfg.max_episode_steps
    try:
        env = gym.make(cfg.task, disable_env_checker=True, **kwargs)
    except gym.error.Error as e:
        raise ValueError(f"agent_env.task: {e}") from None
    env = AgentObservationWrapper(MessageCountWrapper(env), cfg.crop)
    if seed is not None:
        env.reset(seed=seed)
    return env
