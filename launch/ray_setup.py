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
from dataclasses import dataclass

__all__ = ["RayConfig", "init_ray", "worker_env"]


@dataclass
class RayConfig:
    """How the job gets a Ray cluster (the `ray` block)."""
    address: str = ""
    """Cluster to join ("" = RAY_ADDRESS, or the job's cluster under `ray job submit`, else start a local one)."""
    num_cpus: int = 0
    """Logical CPUs of a local cluster (0 = max(4, os.cpu_count())): actors are scheduled on these."""
    num_gpus: int = 0
    """GPUs of a local cluster."""
    object_store_mb: int = 512
    """Object store cap of a local cluster, in MiB."""
    torch_threads: int = 1
    """OMP_NUM_THREADS for every worker process."""


def worker_env(cfg: RayConfig) -> dict[str, str]:
    """Environment variables every Ray worker gets."""
    n = str(cfg.torch_threads)
    return {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "TOKENIZERS_PARALLELISM": "false",
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "0")}


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
