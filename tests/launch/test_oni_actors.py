"""ONI's Ray actors on a loopback cluster: the labeller fills the store through the Generator path
(the distilled tiny LM on the hf backend), the classifier trains on the labels and the learner's
client pulls labels and weights without blocking."""
from __future__ import annotations

import os
import time

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]   # ~65 s on 2 shared cores


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def labeller_dir(tmp_path_factory):
    from rl.oni_distill import DistillConfig, distill_labeller
    out = tmp_path_factory.mktemp("labeller")
    distill_labeller(out, ["It's a wall."], cfg=DistillConfig(steps=4, batch_size=4, hidden_size=32))
    return out


def _wait(cond, timeout=60.0):
    deadline = time.time() + timeout
    while not cond():
        assert time.time() < deadline, "timed out"
        time.sleep(0.2)


def test_labeller_fills_the_store_and_the_client_pulls(ray_cluster, labeller_dir):
    ray = ray_cluster
    from launch.oni_actors import ActorNames, LabellerActor, LabelStoreActor, RayLabelClient
    from reasoner.generation import GeneratorConfig
    from rl.oni_labels import LabellerConfig
    names = ActorNames.for_run("t1")
    store = LabelStoreActor.options(name=names.store).remote(100)
    lab = LabellerActor.options(name=names.labeller, num_cpus=0).remote(
        names.store, LabellerConfig(knowledge=False, max_tokens=4, batch_size=2, idle_sleep_s=0.1),
        GeneratorConfig(device="cpu"), str(labeller_dir))
    assert ray.get(lab.start.remote()) >= 0
    loop = lab.run.remote()
    client = RayLabelClient(names, use_classifier=False)
    client.refresh()                                  # issues a pull, returns at once
    assert client.table == {}
    msgs = ["You kill the newt!", "It's a wall.", "", "You see here a key."]
    client.submit(msgs)
    _wait(lambda: ray.get(store.stats.remote())["labels"] == 4)
    stats = ray.get(lab.stats.remote())               # served while the loop runs (max_concurrency=2)
    assert stats["labelled"] == 4 and stats["calls"] == 2 and stats["errors"] == 0

    def pulled():
        client.refresh()
        return len(client.table) == 4
    _wait(pulled)
    assert set(client.table) == set(msgs) and set(client.table.values()) <= {0, 1}
    assert client.version == 4
    ray.get(lab.stop.remote())
    assert ray.get(loop)["labelled"] == 4


def test_classifier_trains_on_labels_and_publishes_weights(ray_cluster):
    ray = ray_cluster
    from launch.oni_actors import ActorNames, ClassifierActor, LabelStoreActor, RayLabelClient
    from rl.oni_rewards import MessageModelConfig
    names = ActorNames.for_run("t2")
    store = LabelStoreActor.options(name=names.store).remote(100)
    clf = ClassifierActor.options(name=names.classifier).remote(
        names.store, MessageModelConfig(lr=1e-3, batch_size=8, steps_per_update=30), 0, 0.1)
    loop = clf.run.remote()
    client = RayLabelClient(names, use_classifier=True)
    assert client.probs(["x"]) == {"x": 0.0}          # no weights yet: nothing is rewarded
    ray.get(store.restore.remote({"You kill the newt!": 1, "You kill the jackal!": 1, "It's a wall.": 0,
                                  "The door is closed.": 0}))

    def got_weights():
        client.refresh()
        return client.model_version >= 1
    _wait(got_weights)
    p = client.probs(["You kill the newt!", "It's a wall."])
    assert p["You kill the newt!"] > p["It's a wall."]
    ray.get(clf.stop.remote())
    assert ray.get(loop) >= 1
