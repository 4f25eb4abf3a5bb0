"""Starting or joining Ray for entry points, bound to loopback when local.

- Inside `ray job submit` (or with RAY_ADDRESS set) `ray.init()` attaches to that cluster.
- Otherwise an embedded local cluster starts with the configured logical CPUs/GPUs, a capped
  object store, no dashboard, and every socket on 127.0.0.1 (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
  stops Ray from rewriting loopback to the machine's address; environment.md section 1).
Actors get OMP_NUM_THREADS=1 etc. through their own `runtime_env` (`worker_env`), which merges
with a submitted job's runtime environment instead of replacing it.
"""
from __future__ import annotations

import os

from configs.schema import RayConfig, WorkersConfig
from reasoner.generation import Backend, GeneratorConfig

__all__ = ["init_ray", "worker_env", "check_resources", "ResourceShortfall"]


class ResourceShortfall(ValueError):
    """The cluster cannot place every actor of the `workers` block (one-line message)."""


def check_resources(workers: WorkersConfig, cluster: dict[str, float]) -> None:
    """Raise `ResourceShortfall` if `cluster` (`ray.cluster_resources()`) cannot hold all actors.

    Ray would otherwise queue the actors that do not fit forever, and the job would hang silently
    with idle CPUs. Totals are compared (not what is free now): a shortfall here never resolves.
    """
    groups = {name: getattr(workers, name) for name in ("rollout", "learner")}
    for key, flag in (("CPU", "num_cpus"), ("GPU", "num_gpus")):
        asks = {name: (g.count, getattr(g, flag)) for name, g in groups.items() if g.count * getattr(g, flag) > 0}
        need = sum(n * each for n, each in asks.values())
        have = float(cluster.get(key, 0.0))
        if need > have + 1e-9:
            parts = " + ".join(f"workers.{name} {n} x {each:g}" for name, (n, each) in asks.items())
            raise ResourceShortfall(
                f"the Ray cluster has {have:g} {key}s but the workers block asks for {need:g} ({parts}); "
                f"start Ray with --{flag.replace('_', '-')} {need:g} or more, or lower the counts/{flag} "
                f"in the workers block")


def worker_env(cfg: RayConfig, generator: GeneratorConfig | None = None) -> dict[str, str]:
    """Environment variables every Ray worker gets.

    A vLLM engine inside an actor runs in the actor's own process (VLLM_ENABLE_V1_MULTIPROCESSING=0:
    starts in seconds, weights reload in place) unless it needs tensor parallelism.
    """
    n = str(cfg.torch_threads)
    env = {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "TOKENIZERS_PARALLELISM": "false",
           "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "0"),
           "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    # the project's own REASONER_* switches and vLLM's VLLM_* settings follow the driver
    if generator is not None and generator.backend == Backend.VLLM and generator.tensor_parallel_size == 1:
        env["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    env.update({k: v for k, v in os.environ.items() if k.startswith(("REASONER_", "VLLM_"))})
    return env


def init_ray(cfg: RayConfig):
    """Attach to a cluster or start a loopback-only local one; returns the `ray` module."""
    import ray
    if ray.is_initialized():
        return ray
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    address = cfg.address or os.environ.get("RAY_ADDRESS", "")
    inside_job = bool(os.environ.get("RAY_JOB_ID") or os.environ.get("RAY_JOB_SUBMISSION_ID"))
    if address or inside_job:
        ray.init(address=address or "auto", log_to_driver=True)
        return ray
    num_cpus = cfg.num_cpus or max(4, os.cpu_count() or 1)
    ray.init(num_cpus=num_cpus, num_gpus=cfg.num_gpus, object_store_memory=cfg.object_store_mb * 2**20,
             include_dashboard=False, _node_ip_address="127.0.0.1",
             log_to_driver=True, configure_logging=True, logging_level="WARNING")
    return ray
