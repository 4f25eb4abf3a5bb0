"""Ray actor wrappers of the plain worker classes (STYLE section 5: the function form, defined once).

Resources, restarts and the worker environment come from the `workers` and `ray` config blocks
(`make_rollout_workers`, `make_learner`), so the same code runs on a laptop and on a cluster.
"""
from __future__ import annotations

import ray

from configs.schema import ExperimentConfig, WorkerGroupConfig
from launch.ray_setup import worker_env
from launch.spar_workers import SparLearnerWorker, SparWorker
from launch.workers import LearnerWorker, PolicyWorker

__all__ = ["PolicyWorkerActor", "LearnerActor", "SparWorkerActor", "SparLearnerActor", "make_rollout_workers",
           "make_learner", "make_spar_workers", "make_spar_learner"]

PolicyWorkerActor = ray.remote(PolicyWorker)
LearnerActor = ray.remote(LearnerWorker)
SparWorkerActor = ray.remote(SparWorker)
SparLearnerActor = ray.remote(SparLearnerWorker)


def _options(group: WorkerGroupConfig, cfg: ExperimentConfig, name: str) -> dict:
    return dict(num_cpus=group.num_cpus, num_gpus=group.num_gpus, max_restarts=group.max_restarts,
                max_task_retries=group.max_restarts, runtime_env={"env_vars": worker_env(cfg.ray, cfg.generator)}, name=None)


def make_rollout_workers(cfg: ExperimentConfig) -> list:
    """`workers.rollout.count` policy workers (restartable; in-flight chunks are retried)."""
    g = cfg.workers.rollout
    return [PolicyWorkerActor.options(**_options(g, cfg, f"rollout-{i}")).remote(cfg, f"rollout-{i}")
            for i in range(g.count)]


def make_learner(cfg: ExperimentConfig):
    """The learner actor."""
    return LearnerActor.options(**_options(cfg.workers.learner, cfg, "learner")).remote(cfg, "learner")


def make_spar_workers(cfg: ExperimentConfig) -> list:
    """`workers.rollout.count` SPaR workers (actor + refiner generators; restartable)."""
    g = cfg.workers.rollout
    return [SparWorkerActor.options(**_options(g, cfg, f"spar-{i}")).remote(cfg, f"spar-{i}") for i in range(g.count)]


def make_spar_learner(cfg: ExperimentConfig):
    """The SPaR learner actor (actor DPO, refiner RFT)."""
    return SparLearnerActor.options(**_options(cfg.workers.learner, cfg, "spar-learner")).remote(cfg, "spar-learner")
