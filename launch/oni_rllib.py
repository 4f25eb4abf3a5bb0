"""RLlib glue for ONI: the agent's RLModule shell, the learner connector that rewrites rewards,
the env registration and the PPO config. Thin: the math lives in `rl.oni_rewards`, the network
in `rl.agent_net`, the env wrappers in `envs.nethack_rl`.

Where the reward rewrite happens: RLlib's PPO learner pipeline is
    AddOneTsToEpisodesAndTruncate -> [custom learner connectors] -> observations, rewards, ...
    -> batching -> GeneralAdvantageEstimation,
so `ONIRewardConnector` sees the sampled episode chunks (already extended by the one bootstrap
step, whose reward 0 it leaves alone) before their rewards are copied into the train batch and
before GAE. It replaces each transition's reward with ONI's mixed reward (rl.oni_rewards),
reading the message and its episodic count from the env's `info` of the observation the
transition led to. Because this runs at train time with the labels known *now*, experience
sampled before a message was labelled is rescored with its newest label (algorithms.md 5.2),
and the env loop never waits on the labeller. The env-runner metrics keep the environment's own
(extrinsic) episode return.
"""
from __future__ import annotations

import copy
import time
from typing import Any, Protocol

import numpy as np
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.apis import ValueFunctionAPI
from ray.rllib.core.rl_module.torch import TorchRLModule
from ray.rllib.env.single_agent_episode import SingleAgentEpisode

from rl.oni_rewards import ONIRewardConfig, RewardKind, rescore_transitions

__all__ = ["ONIAgentModule", "ONIRewardConnector", "LabelClient", "ENV_NAME", "register_agent_env",
           "build_ppo_config"]

ENV_NAME = "oni_nethack"


# ------------------------------------------------------------------------------ RLModule shell
class ONIAgentModule(TorchRLModule, ValueFunctionAPI):
    """`rl.agent_net.NetHackAgentNet` as an RLlib TorchRLModule (Dict obs: glyphs, blstats)."""

    def setup(self):
        from envs.nethack_rl import PAD_GLYPH
        from rl.agent_net import NetHackAgentNet
        spaces = self.observation_space.spaces
        mc = self.model_config or {}
        self.net = NetHackAgentNet(int(self.action_space.n), crop=spaces["glyphs"].shape[0], num_glyphs=PAD_GLYPH,
                                   num_blstats=spaces["blstats"].shape[0], hidden=int(mc.get("hidden", 256)))

    def _features(self, batch):
        obs = batch[Columns.OBS]
        return self.net.features(obs["glyphs"], obs["blstats"])

    def _forward(self, batch, **kwargs):
        return {Columns.ACTION_DIST_INPUTS: self.net.pi(self._features(batch))}

    def _forward_train(self, batch, **kwargs):
        h = self._features(batch)
        return {Columns.ACTION_DIST_INPUTS: self.net.pi(h), Columns.EMBEDDINGS: h}

    def compute_values(self, batch, embeddings=None):
        if embeddings is None:
            embeddings = self._features(batch)
        return self.net.vf(embeddings).squeeze(-1)


# ------------------------------------------------------------------------------ labels at train time
class LabelClient(Protocol):
    """What the connector needs from the label side (a Ray-backed client in `launch.oni_actors`)."""

    table: dict[str, int]

    def refresh(self) -> None:
        """Apply any labels / classifier weights that have arrived; never blocks."""

    def submit(self, messages: list[str]) -> None:
        """Queue messages for labelling (fire and forget)."""

    def probs(self, messages: list[str]) -> dict[str, float]:
        """p(helpful | m) of the current classifier for each message."""


class ONIRewardConnector(ConnectorV2):
    """Learner connector: rewrite each transition's reward with ONI's mixed reward (see module docstring).

    `client_factory()` builds the `LabelClient` lazily inside the learner process.
    """

    def __init__(self, input_observation_space=None, input_action_space=None, *, reward_cfg: ONIRewardConfig,
                 client_factory=None):
        super().__init__(input_observation_space, input_action_space)
        self.reward_cfg = reward_cfg
        self.client_factory = client_factory
        self.client: LabelClient | None = None
        self.submitted: set[str] = set()
        self.seconds = 0.0
        self.transitions = 0
        self._running: dict[str, float] = {}   # episode id -> intrinsic return of its earlier chunks

    def __call__(self, *, rl_module, batch, episodes, explore=None, shared_data=None, metrics=None, **kwargs):
        t0 = time.perf_counter()
        cfg = self.reward_cfg
        if self.client is None and self.client_factory is not None:
            self.client = self.client_factory()
        client = self.client
        if client is not None:
            client.refresh()
        table = client.table if client is not None else {}
        # the bootstrap step added by AddOneTsToEpisodesAndTruncate (reward 0) is not a transition
        extra = 1 if (shared_data or {}).get("_added_loss_mask_for_valid_episode_ts") else 0
        chunks = []
        for idx, ep in enumerate(episodes):
            if not isinstance(ep, SingleAgentEpisode):
                raise TypeError("ONIRewardConnector supports single-agent episodes only")
            n = len(ep) - extra
            if n <= 0:
                continue
            infos = ep.get_infos()[1:n + 1]            # info of the observation transition t led to
            msgs = [i.get("message", "") for i in infos]
            counts = [int(i.get("message_count", 1)) for i in infos]
            ends = [bool(i.get("episode_end", False)) for i in infos]
            key = ep.id_.rsplit("_", 1)[0] if extra else ep.id_   # AddOneTs appends "_<i>" to the id
            # A local env runner keeps these very chunk objects to sum episode returns for its
            # metrics; rewrite a copy whose reward buffer is our own, so they stay extrinsic.
            ep = copy.copy(ep)
            ep.rewards = copy.deepcopy(ep.rewards)
            episodes[idx] = ep
            chunks.append((ep, n, msgs, counts, ends, key))
        uniq = sorted({m for _, _, msgs, *_ in chunks for m in msgs})
        probs = client.probs(uniq) if (client is not None and cfg.kind == RewardKind.CLASSIFICATION) else None
        if cfg.kind == RewardKind.CLASSIFICATION and probs is None:
            probs = {m: 0.0 for m in uniq}
        total = labelled = 0
        r_int_sum, ep_int_returns = 0.0, []
        for ep, n, msgs, counts, ends, key in chunks:
            r_ext = np.asarray(ep.get_rewards()[:n], dtype=np.float32)
            mixed, r_int = rescore_transitions(r_ext, msgs, counts, cfg, table=table, probs=probs)
            ep.set_rewards(new_data=mixed, at_indices=slice(0, n))
            total += n
            labelled += sum(1 for m in msgs if m in table)
            r_int_sum += float(r_int.sum())
            acc = self._running.pop(key, 0.0)
            for t in range(n):   # intrinsic return of every episode that ends in this chunk
                acc += float(r_int[t])
                if ends[t]:
                    ep_int_returns.append(acc)
                    acc = 0.0
            if not ends[n - 1] and len(self._running) < 100000:
                self._running[key] = acc
        new = [m for m in uniq if m not in table and m not in self.submitted]
        if new and client is not None and cfg.kind != RewardKind.NONE:
            client.submit(new)
            self.submitted.update(new)
        self.seconds += time.perf_counter() - t0
        self.transitions += total
        if metrics is not None and total:
            metrics.log_value(("oni", "label_coverage"), labelled / total, window=1)
            metrics.log_value(("oni", "intrinsic_reward_per_step"), r_int_sum / total, window=1)
            metrics.log_value(("oni", "labels_known"), float(len(table)), window=1)
            metrics.log_value(("oni", "rewrite_us_per_transition"), 1e6 * self.seconds / max(1, self.transitions),
                              window=1)
            if ep_int_returns:
                metrics.log_value(("oni", "intrinsic_return_mean"), float(np.mean(ep_int_returns)), window=1)
        return batch


# ------------------------------------------------------------------------------ env and PPO config
def register_agent_env() -> None:
    """Register `ENV_NAME` with RLlib (env_config = the AgentEnvConfig fields)."""
    from ray.tune.registry import register_env

    from envs.nethack_rl import AgentEnvConfig, make_agent_env

    def creator(env_config: dict[str, Any]):
        return make_agent_env(AgentEnvConfig(**{k: env_config[k] for k in ("task", "crop", "max_episode_steps")}))

    register_env(ENV_NAME, creator)


def build_ppo_config(job, *, seed: int, client_factory=None):
    """RLlib PPOConfig (new API stack) for an `ONIJobConfig` block `job`.

    `client_factory` (picklable, no arguments) builds the learner's `LabelClient`.
    """
    import dataclasses

    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec
    register_agent_env()
    p = job.ppo
    reward_cfg = job.reward

    def learner_connector(obs_space, act_space):
        return ONIRewardConnector(obs_space, act_space, reward_cfg=reward_cfg, client_factory=client_factory)

    config = (
        PPOConfig()
        .environment(ENV_NAME, env_config=dataclasses.asdict(job.env))
        .framework("torch")
        .env_runners(num_env_runners=p.num_env_runners, num_envs_per_env_runner=p.envs_per_runner,
                     rollout_fragment_length="auto", num_cpus_per_env_runner=1)
        .learners(num_learners=0, learner_connector=learner_connector)
        .training(lr=p.lr, gamma=p.gamma, lambda_=p.lambda_, clip_param=p.clip, vf_clip_param=p.vf_clip,
                  vf_loss_coeff=p.vf_coef, entropy_coeff=p.entropy_coef, train_batch_size_per_learner=p.train_batch,
                  minibatch_size=p.minibatch, num_epochs=p.epochs, grad_clip=p.grad_clip)
        .rl_module(rl_module_spec=RLModuleSpec(module_class=ONIAgentModule, model_config={"hidden": p.hidden}))
        .debugging(seed=seed, log_level="ERROR")
        .reporting(metrics_num_episodes_for_smoothing=p.episodes_for_metrics)
    )
    return config
