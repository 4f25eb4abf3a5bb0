"""Plain worker classes of the ALFWorld job (`launch/alfworld_job.py`); Ray wraps them there.

`AgentWorker` (one per rollout actor) holds a policy `Generator` (and the critic when there is
one) and plays ALFWorld games through the agent loop (`search.agent.run_episodes`): rollouts of
training games at temperature 1 for the learners, and evaluation episodes (greedy, or best-of-K
turns by the critic). ALFWorld steps are GIL-bound, so the job's parallelism is one process per
actor; inside an actor all its episodes advance together, one batched `generate` per round.

`AgentLearner` (the learner actor) trains: behaviour cloning of the tiny model from scratch on
the walkthroughs (iteration 0), then per iteration OREO (policy + value), rejection-sampling
fine-tuning (RFT) or trajectory DPO on the rollouts, as `iterate.agent_learner` says.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from configs.schema import AgentLearnerKind, ExperimentConfig

__all__ = ["AgentWorker", "AgentLearner"]


class AgentWorker:
    """Generation side: rollouts and evaluation episodes on ALFWorld games."""

    def __init__(self, cfg: ExperimentConfig, name: str = "agent-worker"):
        self.cfg = cfg
        self.name = name
        self.generator = None
        self.version: int | None = None
        self.value = None
        self.value_path: str | None = None
        self.fmt = None

    def load(self, policy_path: str, version: int, value_path: str | None = None) -> None:
        """Serve `policy_path` (version `version`) and the critic at `value_path` (None: no critic)."""
        from launch.alfworld_data import turn_format_of
        from reasoner.loading import build_generator, resolve_device
        if self.generator is None:
            self.generator = build_generator(self.cfg.generator, policy_path)
        elif version != self.version:
            self.generator.load_weights(policy_path)
        self.version = version
        self.fmt = turn_format_of(policy_path)
        if value_path != self.value_path:
            self.value = None
            if value_path:
                from reasoner.value_model import ValueModel
                self.value = ValueModel.from_pretrained(value_path, device=resolve_device(self.cfg.generator.device))
            self.value_path = value_path

    def _play(self, games, repeats: int, policy, agent_cfg) -> tuple[list, dict]:
        from envs.alfworld import AlfworldEnv
        from envs.interactive import EnvGroup
        from search.agent import run_episodes
        env_cfg = dataclasses.replace(self.cfg.alfworld)
        envs = [AlfworldEnv(g, env_cfg) for g in games for _ in range(repeats)]   # a game's copies are adjacent
        pool = EnvGroup(envs)
        tokens0, t0 = self.generator.stats.generated_tokens, time.perf_counter()
        try:
            episodes = run_episodes(policy, pool, self.fmt, agent_cfg, seeds=[self.cfg.seed] * len(envs))
        finally:
            pool.close()
        stats = {"episodes": len(episodes), "won": int(sum(e.stats["won"] for e in episodes)),
                 "env_steps": int(sum(e.stats["steps"] for e in episodes)),
                 "parse_failures": int(sum(e.stats["parse_failures"] for e in episodes)),
                 "generated_tokens": int(self.generator.stats.generated_tokens - tokens0),
                 "wall_s": round(time.perf_counter() - t0, 2)}
        return episodes, stats

    def rollout(self, games: list, policy_path: str, version: int) -> dict:
        """`alfworld_task.rollouts_per_game` sampled episodes of each game (temperature from the task).

        Split: one chunk of training games per call. Gather: the driver concatenates trajectories
        in chunk order and sums the statistics.
        """
        from search.agent import LLMPolicy
        try:
            self.load(policy_path, version, self.value_path)
            task = self.cfg.alfworld_task
            agent_cfg = dataclasses.replace(self.cfg.agent, temperature=task.rollout_temperature,
                                            policy_version=version, source="rollout")
            episodes, stats = self._play(games, task.rollouts_per_game, LLMPolicy(self.generator, self.fmt, agent_cfg),
                                         agent_cfg)
        except Exception as e:
            raise RuntimeError(f"{self.name}: rollout of {len(games)} games ({games[0].name} ...) with policy "
                               f"v{version} failed: {type(e).__name__}: {e}") from e
        return {"trajectories": [e.trajectory for e in episodes], "stats": stats}

    def evaluate(self, games: list, method: str, policy_path: str, version: int, value_path: str | None) -> dict:
        """One episode per game with `method` (greedy, or best_of_k@K with the critic).

        Split: one shard of an evaluation split per call. Gather: the driver sums wins, steps and tokens.
        """
        from launch.evaluation import EvalMethod, parse_method
        from search.agent import LLMPolicy
        from search.agent_best_of_k import BestOfKPolicy
        try:
            self.load(policy_path, version, value_path)
            kind, k = parse_method(method)
            agent_cfg = dataclasses.replace(self.cfg.agent, temperature=0.0, policy_version=version, source=method)
            if kind == EvalMethod.GREEDY:
                policy = LLMPolicy(self.generator, self.fmt, agent_cfg)
            elif kind == EvalMethod.BEST_OF_K:
                if self.value is None:
                    raise ValueError("best_of_k needs a critic")
                policy = BestOfKPolicy(self.generator, self.value, self.fmt, agent_cfg, k=k or 5,
                                       temperature=self.cfg.alfworld_task.rollout_temperature)
            else:
                raise ValueError(f"ALFWorld evaluates greedy or best_of_k@K, not {method!r}")
            episodes, stats = self._play(games, 1, policy, agent_cfg)
        except Exception as e:
            raise RuntimeError(f"{self.name}: evaluation '{method}' of {len(games)} games failed: "
                               f"{type(e).__name__}: {e}") from e
        return {**stats, "per_game": [(e.trajectory.problem_id, bool(e.stats["won"])) for e in episodes]}


class AgentLearner:
    """Training side: BC from scratch (iteration 0) and the per-iteration agent learner."""

    def __init__(self, cfg: ExperimentConfig, name: str = "agent-learner"):
        self.cfg = cfg
        self.name = name

    def bc(self, out_dir: str, processes: int = 1) -> dict:
        """Behaviour-clone the starting policy on the walkthrough trajectories into `out_dir`."""
        from launch.alfworld_data import build_agent_tokenizer, expert_records, save_turn_format, turn_format
        from launch.seeding import seed_everything
        from reasoner.loading import load_policy
        from reasoner.tiny import build_tiny_model
        from rl.learners.agent_bc import AgentBCLearner
        cfg, out = self.cfg, Path(out_dir)
        seed_everything(cfg.seed)
        trajs = [t for t in expert_records(cfg.alfworld_task, cfg.alfworld, processes=processes, progress=False)
                 if t.reward == 1.0]
        if cfg.model.policy:
            policy, tok = load_policy(cfg.model.policy, "cpu")
        else:
            tok = build_agent_tokenizer(cfg.alfworld_task)
            policy = build_tiny_model(cfg.model.tiny, tok, seed=cfg.seed)
        summary = AgentBCLearner(policy, tok, cfg.agent_bc).fit(trajs, out, algo="agent_bc", progress=False)
        save_turn_format(out, turn_format(cfg.alfworld_task))
        return {"expert_trajectories": len(trajs), **_metrics(summary)}

    def train(self, iteration: int, policy_path: str, ref_path: str, value_path: str | None,
              trajectories: list, out_dir: str) -> dict:
        """One learning phase on the rollouts; returns {"policy", "value", "algo", metrics...}.

        A learner without usable data (RFT: no success; DPO: no game with both outcomes) keeps the
        policy and says so (`"no_data"`), so an iteration never fails for lack of signal.
        """
        try:
            return self._train(iteration, policy_path, ref_path, value_path, trajectories, Path(out_dir))
        except Exception as e:
            raise RuntimeError(f"{self.name}: training of iteration {iteration} failed: "
                               f"{type(e).__name__}: {e}") from e

    def _train(self, iteration, policy_path, ref_path, value_path, trajectories, out: Path) -> dict:
        from launch.alfworld_data import FORMAT_FILE
        from reasoner.loading import load_policy
        from reasoner.value_model import ValueModel
        from rl.learners.agent_bc import AgentBCLearner
        from rl.learners.oreo import OREOLearner
        from rl.learners.trajectory_dpo import TrajectoryDPOLearner
        cfg = self.cfg
        kind = AgentLearnerKind(cfg.iterate.agent_learner)
        seed = cfg.seed + iteration
        result = {"algo": kind.value, "policy": policy_path, "value": value_path, "no_data": False}
        policy, tok = load_policy(policy_path, "cpu")
        successes = sum(t.reward == 1.0 for t in trajectories)
        if kind == AgentLearnerKind.OREO:
            ref, _ = load_policy(ref_path, "cpu")
            value = (ValueModel.from_pretrained(value_path, tokenizer=tok) if value_path
                     else ValueModel.from_policy(policy, tok))
            ocfg = dataclasses.replace(cfg.oreo, seed=seed)
            summary = OREOLearner(policy, ref, value, tok, ocfg).fit(trajectories, out / "oreo", progress=False)
            result.update(policy=str(out / "oreo" / "policy"), value=str(out / "oreo" / "value"))
        elif kind == AgentLearnerKind.RFT:
            if not successes:
                return {**result, "no_data": True}
            rcfg = dataclasses.replace(cfg.agent_bc, lr=cfg.iterate.rft_lr, seed=seed)
            summary = AgentBCLearner(policy, tok, rcfg).fit(trajectories, out / "rft", successes_only=True,
                                                            algo="rft", progress=False)
            result["policy"] = str(out / "rft")
        else:
            from rl.learners.trajectory_dpo import trajectory_pairs
            dcfg = dataclasses.replace(cfg.trajectory_dpo, seed=seed)
            if not trajectory_pairs(trajectories, max_pairs=dcfg.max_pairs, seed=seed):
                return {**result, "no_data": True}
            ref, _ = load_policy(ref_path, "cpu")
            summary = TrajectoryDPOLearner(policy, ref, tok, dcfg).fit(trajectories, out / "dpo", progress=False)
            result["policy"] = str(out / "dpo")
        src = Path(policy_path) / FORMAT_FILE
        if src.exists():
            (Path(result["policy"]) / FORMAT_FILE).write_text(src.read_text())
        return {**result, **_metrics(summary)}


def _metrics(summary: dict) -> dict:
    last = summary.get("last", {})
    return {"steps": summary.get("steps"), "seconds": round(summary.get("seconds", 0.0), 2),
            **{k: float(v) for k, v in last.items()},
            **{k: summary[k] for k in ("pairs", "trajectories", "skipped") if k in summary}}
