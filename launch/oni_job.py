"""The ONI job: an RLlib PPO agent on NetHack/MiniHack with asynchronous LLM message labels.

    python launch/iterate.py --config configs/oni_minihack.yaml           # embedded local Ray
    ray job submit --working-dir . -- python launch/iterate.py --config configs/oni_minihack.yaml \\
        --run-dir /abs/path/runs/oni

Iteration 0 prepares the labeller: `oni.labeller.model` (a checkpoint for hf/vllm, a model name
for an OpenAI-compatible endpoint), or, when empty, the tiny labeller LM distilled from the
heuristic annotator into `RUN/checkpoints/labeller_0` (rl.oni_distill; the README says plainly
that this is what labels on CPU). Then the actors start: the label store, the labeller loop
(reloaded with the labels of the last committed iteration on resume), and for
`oni.reward.kind=classification` the message-model trainer (launch.oni_actors). Each job
iteration k runs `oni.train_calls_per_iteration` PPO iterations (RLlib's `Algorithm.train`, the
reward rewrite inside its learner connector, launch.oni_rllib), then saves the algorithm to
`RUN/checkpoints/agent_k`, the label table to `RUN/iter_k/labels.json`, and commits the
manifest last. TensorBoard (`RUN/tensorboard`, x = env steps): extrinsic episode return (the
env's own reward), intrinsic reward and return, label coverage of the trained transitions, labels
known, labeller lag and throughput, env steps/s. `summary.json` and `plots/oni_returns.png`
are refreshed at every commit. Rerunning the same command after a crash resumes from the last
committed iteration (RLlib state: weights, optimizer, env-runner connectors; plus the labels).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

__all__ = ["ONIJob", "iteration_metrics", "env_messages"]


def env_messages(task: str, steps: int, seed: int = 0) -> list[str]:
    """Distinct messages met by `steps` uniformly random actions in `task` (for distillation)."""
    import numpy as np

    from envs.nethack import AgentEnvConfig
    from envs.nethack_rl import make_agent_env
    env = make_agent_env(AgentEnvConfig(task=task))
    rng = np.random.default_rng(seed)
    _, info = env.reset(seed=seed)
    seen = {info["message"]}
    for _ in range(steps):
        _, _, term, trunc, info = env.step(int(rng.integers(env.action_space.n)))
        seen.add(info["message"])
        if term or trunc:
            _, info = env.reset()
    env.close()
    return sorted(seen)


def iteration_metrics(result: dict, store: dict, labeller: dict, wall_s: float, steps: int) -> dict:
    """The numbers one job iteration reports, from RLlib's last result and the actors' stats."""
    er, oni = result.get("env_runners", {}), result.get("learners", {}).get("oni", {})
    return {
        "env_steps": int(er.get("num_env_steps_sampled_lifetime", 0)),
        "episodes": int(er.get("num_episodes_lifetime", 0)),
        "extrinsic_return": float(er.get("episode_return_mean", float("nan"))),
        "episode_len": float(er.get("episode_len_mean", float("nan"))),
        "intrinsic_reward_per_step": float(oni.get("intrinsic_reward_per_step", 0.0)),
        "intrinsic_return": float(oni.get("intrinsic_return_mean", 0.0)),
        "label_coverage": float(oni.get("label_coverage", 0.0)),
        "rewrite_us_per_transition": float(oni.get("rewrite_us_per_transition", 0.0)),
        "labels": store.get("labels", 0), "labels_positive": store.get("positive", 0),
        "messages_seen": store.get("seen", 0), "pending": store.get("pending", 0),
        "labeller_lag_median_s": store.get("lag_median_s", 0.0),
        "labelled_within_10s": store.get("labelled_within_10s", 0.0),
        "labeller_messages_per_s": labeller.get("messages_per_s", 0.0),
        "labeller_unparsable": labeller.get("unparsable", 0),
        "steps_per_s": steps / wall_s if wall_s > 0 else 0.0, "wall_s": round(wall_s, 2),
    }


class ONIJob:
    """The single controller of an ONI run (see the module docstring)."""

    def __init__(self, cfg, run, *, quiet: bool = False):
        self.cfg, self.run, self.quiet = cfg, run, quiet
        self.job = cfg.oni
        self.writer = None
        self.names = None
        self.actors: dict = {}

    # ------------------------------------------------------------------ labeller model
    def labeller_model(self) -> tuple[str, dict]:
        """(model path or name, info): the configured model, or the tiny LM distilled now."""
        from reasoner.generation import Backend
        if self.job.labeller.model:
            return self.job.labeller.model, {"source": "oni.labeller.model"}
        if self.job.labeller_generator.backend == Backend.OPENAI:
            raise ValueError("oni.labeller.model must name the endpoint's model for the openai backend")
        from rl.oni_distill import distill_labeller
        out = self.run.root / "checkpoints" / "labeller_0"
        msgs = env_messages(self.job.env.task, self.job.distill.env_messages_steps, seed=self.cfg.seed)
        print(f"[iteration 0] distilling the tiny labeller LM from the heuristic annotator -> {out} "
              f"({self.job.distill.steps} steps, {len(msgs)} task messages)", flush=True)
        info = distill_labeller(out, msgs, cfg=self.job.distill, goal=self.job.labeller.goal, seed=self.cfg.seed,
                                progress=not self.quiet)
        return str(out), {"source": "distilled from rl.oni_labels.heuristic_label", **info}

    # ------------------------------------------------------------------ actors
    def start_actors(self, labeller_path: str, labels: dict[str, int]) -> None:
        import ray

        from launch.oni_actors import ActorNames, ClassifierActor, LabellerActor, LabelStoreActor
        from launch.ray_setup import worker_env
        from rl.oni_rewards import RewardKind
        job = self.job
        self.names = ActorNames.for_run(f"{abs(hash(str(self.run.root))) % 10**8}-{int(time.time())}")
        env = {"env_vars": worker_env(self.cfg.ray, job.labeller_generator)}
        store = LabelStoreActor.options(name=self.names.store, runtime_env=env).remote(job.labeller.max_pending)
        if labels:
            ray.get(store.restore.remote(labels))
        self.actors = {"store": store}
        if job.reward.kind == RewardKind.NONE:
            return
        lab = LabellerActor.options(name=self.names.labeller, num_cpus=job.labeller_cpus, runtime_env=env).remote(
            self.names.store, job.labeller, job.labeller_generator, labeller_path)
        self.actors["labeller"] = lab
        load_s = ray.get(lab.start.remote())   # model loading is start-up, not labeller lag
        print(f"labeller ready ({job.labeller_generator.backend.value}, {labeller_path}, {load_s:.1f} s)", flush=True)
        self.actors["labeller_run"] = lab.run.remote()
        if job.reward.kind == RewardKind.CLASSIFICATION:
            clf = ClassifierActor.options(name=self.names.classifier, runtime_env=env).remote(
                self.names.store, job.classifier, self.cfg.seed)
            self.actors["classifier"] = clf
            self.actors["classifier_run"] = clf.run.remote()

    def stop_actors(self) -> None:
        import ray
        for key in ("labeller", "classifier"):
            if key in self.actors:
                ray.get(self.actors[key].stop.remote())
        for key in ("labeller_run", "classifier_run"):
            if key in self.actors:
                ray.get(self.actors[key])   # surfaces a loop that died

    def actor_stats(self) -> tuple[dict, dict]:
        import ray
        store = ray.get(self.actors["store"].stats.remote())
        lab = ray.get(self.actors["labeller"].stats.remote()) if "labeller" in self.actors else {}
        return store, lab

    def labels(self) -> dict[str, int]:
        import ray
        return ray.get(self.actors["store"].since.remote(0))[1]

    # ------------------------------------------------------------------ algorithm
    def build_algo(self, last: int):
        from launch.oni_actors import client_factory
        from launch.oni_rllib import build_ppo_config
        from rl.oni_rewards import RewardKind
        factory = client_factory(self.names, self.job.reward.kind == RewardKind.CLASSIFICATION)
        algo = build_ppo_config(self.job, seed=self.cfg.seed, client_factory=factory).build_algo()
        if last > 0:
            algo.restore_from_path(str(self.agent_dir(last)))
        return algo

    def agent_dir(self, k: int) -> Path:
        return self.run.root / "checkpoints" / f"agent_{k}"

    def save_agent(self, algo, k: int) -> Path:
        import dataclasses
        out = self.agent_dir(k)
        algo.save_to_path(str(out))
        (out / "agent_env.json").write_text(json.dumps(dataclasses.asdict(self.job.env)))
        return out

    # ------------------------------------------------------------------ bookkeeping
    def _tb(self):
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(str(self.run.tensorboard))
        return self.writer

    def commit(self, k: int, manifest: dict) -> None:
        from launch.plots import plot_oni
        self.run.commit(k, manifest)
        summary = self.run.write_summary()
        plot_oni(summary, self.run.root / "plots")
        m = manifest.get("metrics")
        if m:
            tb, x = self._tb(), m["env_steps"]
            for key in ("extrinsic_return", "intrinsic_return", "intrinsic_reward_per_step", "label_coverage",
                        "labels", "labeller_lag_median_s", "labelled_within_10s", "labeller_messages_per_s",
                        "steps_per_s", "episode_len"):
                tb.add_scalar(f"oni/{key}", m[key], x)
            tb.flush()
            print(f"[iteration {k}] env steps {m['env_steps']:>8}  extrinsic return {m['extrinsic_return']:7.3f}  "
                  f"intrinsic return {m['intrinsic_return']:6.3f}  coverage {m['label_coverage']:.2f}  "
                  f"labels {m['labels']:>5} (+{m['labels_positive']})  lag {m['labeller_lag_median_s']:.1f} s  "
                  f"{m['steps_per_s']:.0f} steps/s", flush=True)

    def run_all(self) -> dict:
        run, job = self.run, self.job
        last = run.last_committed()
        if last is None:
            path, info = self.labeller_model()
            self.commit(0, {"labeller": path, "labeller_info": info, "policy_version": 0,
                            "reward": job.reward.kind.value, "task": job.env.task})
            last = 0
        else:
            print(f"resuming {run.root} after committed iteration {last}", flush=True)
        labeller_path = run.read_manifest(0)["labeller"]
        labels_file = run.iter_dir(last) / "labels.json"
        labels = json.loads(labels_file.read_text()) if labels_file.exists() else {}
        self.start_actors(labeller_path, labels)
        algo = self.build_algo(last)
        try:
            for k in range(last + 1, job.iterations + 1):
                t0, before = time.perf_counter(), None
                for _ in range(job.train_calls_per_iteration):
                    result = algo.train()
                    before = before if before is not None else result
                wall = time.perf_counter() - t0
                steps = int(result["env_runners"].get("num_env_steps_sampled_lifetime", 0))
                prev = run.read_manifest(k - 1).get("metrics", {}).get("env_steps", 0)
                store, lab = self.actor_stats()
                metrics = iteration_metrics(result, store, lab, wall, steps - prev)
                ckpt = self.save_agent(algo, k)
                run.iter_dir(k).mkdir(parents=True, exist_ok=True)
                (run.iter_dir(k) / "labels.json").write_text(json.dumps(self.labels()))
                self.commit(k, {"policy": str(ckpt), "policy_version": k, "metrics": metrics,
                                "reward": job.reward.kind.value, "task": job.env.task})
        finally:
            algo.stop()
            self.stop_actors()
        summary = run.write_summary()
        print(f"run directory: {run.root}", flush=True)
        return summary
