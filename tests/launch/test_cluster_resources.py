"""The resource check before actors are created: a cluster too small for the `workers` block
stops the job with one line naming the shortfall (Ray would queue the actors forever)."""
from __future__ import annotations

import pytest

from configs.schema import WorkerGroupConfig, WorkersConfig
from launch.ray_setup import ResourceShortfall, check_resources


def test_default_workers_need_three_cpus():
    workers = WorkersConfig()  # 2 rollout + 1 learner, one CPU each
    check_resources(workers, {"CPU": 3.0, "memory": 1e9})
    check_resources(workers, {"CPU": 16.0, "GPU": 1.0})
    with pytest.raises(ResourceShortfall) as e:
        check_resources(workers, {"CPU": 2.0})
    msg = str(e.value)
    assert "\n" not in msg
    assert msg == ("the Ray cluster has 2 CPUs but the workers block asks for 3 "
                   "(workers.rollout 2 x 1 + workers.learner 1 x 1); start Ray with --num-cpus 3 or more, "
                   "or lower the counts/num_cpus in the workers block")


def test_gpu_and_fractional_shortfall():
    workers = WorkersConfig(rollout=WorkerGroupConfig(count=4, num_cpus=0.5, num_gpus=0.5),
                            learner=WorkerGroupConfig(count=1, num_cpus=1, num_gpus=1))
    check_resources(workers, {"CPU": 3.0, "GPU": 3.0})
    with pytest.raises(ResourceShortfall, match=r"has 2 GPUs but the workers block asks for 3 "
                                                r"\(workers.rollout 4 x 0.5 \+ workers.learner 1 x 1\)"):
        check_resources(workers, {"CPU": 3.0, "GPU": 2.0})
    with pytest.raises(ResourceShortfall, match=r"has 0 GPUs"):
        check_resources(workers, {"CPU": 8.0})
