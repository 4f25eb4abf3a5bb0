"""ONI's Ray actors: the label store, the labeller loop, the classifier loop, and the learner's client.

    learner (connector) --submit(new messages)--> LabelStore actor <--take / put-- Labeller actor
           ^   ^                                         |                      (Generator: hf/vllm/openai)
           |   +---------- since(version) ---------------+--since(version)--> Classifier actor
           +-------------- weights(version) (non-blocking pull) <------------------+

- The store (`LabelStoreServer` over `rl.oni_labels.LabelStore`) is a plain single-threaded actor:
  Ray runs its calls one at a time, so the store needs no locks.
- The labeller (`LabellerLoop`) runs its loop inside one actor method; it is created with
  `max_concurrency=2` so `stats` and `stop` are served while the loop runs (a default actor would
  queue them behind the loop forever).
- The classifier (`ClassifierLoop`, ONI-Classification) trains the char-CNN on the labels in its
  own actor, 32 steps per new label batch, and publishes versioned weights; also max_concurrency=2.
- `RayLabelClient` is what the learner connector holds: `refresh()` issues a versioned pull and
  applies it if it arrives within `wait_s` (50 ms; the store answers in milliseconds), else at a
  later call, so the learner never waits on the labeller or the classifier's training.
Actors are found by name (`ActorNames`), so a learner in another process reaches them too.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import ray

from reasoner.generation import GeneratorConfig
from rl.oni_labels import LabelStore, Labeller, LabellerConfig
from rl.oni_rewards import MessageModelConfig

__all__ = ["ActorNames", "LabelStoreServer", "LabellerLoop", "ClassifierLoop", "RayLabelClient",
           "LabelStoreActor", "LabellerActor", "ClassifierActor"]


@dataclass(frozen=True)
class ActorNames:
    """Names of one run's ONI actors (unique per run, so two runs on one cluster do not collide)."""
    store: str
    labeller: str
    classifier: str

    @classmethod
    def for_run(cls, tag: str) -> "ActorNames":
        return cls(f"oni-store-{tag}", f"oni-labeller-{tag}", f"oni-classifier-{tag}")


class LabelStoreServer:
    """`LabelStore` with wall-clock times (seconds since the actor started)."""

    def __init__(self, max_pending: int):
        self.store = LabelStore(max_pending)
        self.t0 = time.monotonic()

    def _now(self) -> float:
        return time.monotonic() - self.t0

    def submit(self, messages: list[str]) -> int:
        return self.store.submit(messages, self._now())

    def take(self, n: int) -> list[str]:
        return self.store.take(n)

    def requeue(self, messages: list[str]) -> None:
        self.store.requeue(messages)

    def put(self, labels: dict[str, int]) -> int:
        return self.store.put(labels, self._now())

    def since(self, version: int) -> tuple[int, dict[str, int]]:
        return self.store.since(version)

    def restore(self, labels: dict[str, int]) -> int:
        """Reload labels saved by a previous run (resume)."""
        return self.store.put(labels, self._now())

    def stats(self) -> dict:
        return self.store.stats(self._now())


class LabellerLoop:
    """Takes the newest pending messages, labels them through a `Generator`, puts the labels back."""

    def __init__(self, store_name: str, cfg: LabellerConfig, gen_cfg: GeneratorConfig, model: str):
        self.store_name, self.cfg, self.gen_cfg, self.model = store_name, cfg, gen_cfg, model
        self._stop = threading.Event()
        self.totals = {"labelled": 0, "unparsable": 0, "calls": 0, "seconds": 0.0, "errors": 0}
        self.last_error = ""
        self.labeller: Labeller | None = None

    def start(self) -> float:
        """Load the labeller model (call before `run`); returns the seconds it took."""
        from reasoner.loading import build_generator
        t0 = time.perf_counter()
        self.labeller = Labeller(build_generator(self.gen_cfg, self.model), self.cfg)
        return time.perf_counter() - t0

    def run(self) -> dict:
        """The loop (returns when `stop` is called)."""
        store = ray.get_actor(self.store_name)
        if self.labeller is None:
            self.start()
        labeller = self.labeller
        while not self._stop.is_set():
            messages = ray.get(store.take.remote(self.cfg.batch_size))
            if not messages:
                self._stop.wait(self.cfg.idle_sleep_s)
                continue
            try:
                batch = labeller.label(messages)
            except Exception as e:  # a failed call must not lose the messages or kill the loop
                ray.get(store.requeue.remote(messages))
                self.totals["errors"] += 1
                self.last_error = f"{type(e).__name__}: {e}"
                self._stop.wait(self.cfg.idle_sleep_s)
                continue
            ray.get(store.put.remote(batch.labels))
            self.totals["labelled"] += len(batch.labels)
            self.totals["unparsable"] += batch.unparsable
            self.totals["calls"] += 1
            self.totals["seconds"] += batch.seconds
        return self.stats()

    def stop(self) -> None:
        self._stop.set()

    def stats(self) -> dict:
        t = dict(self.totals)
        t["messages_per_s"] = t["labelled"] / t["seconds"] if t["seconds"] > 0 else 0.0
        t["last_error"] = self.last_error
        return t


class ClassifierLoop:
    """ONI-Classification's message model, trained on the store's labels as they arrive."""

    def __init__(self, store_name: str, cfg: MessageModelConfig, seed: int = 0, idle_sleep_s: float = 0.5):
        self.store_name, self.cfg, self.seed, self.idle_sleep_s = store_name, cfg, seed, idle_sleep_s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._published: tuple[int, dict] = (0, {})
        self.losses: list[float] = []

    def run(self) -> int:
        import torch
        torch.set_num_threads(1)
        from rl.message_model import MessageModelTrainer
        trainer = MessageModelTrainer(self.cfg, seed=self.seed)
        store = ray.get_actor(self.store_name)
        have = 0
        while not self._stop.is_set():
            have, new = ray.get(store.since.remote(have))
            if not new:
                self._stop.wait(self.idle_sleep_s)
                continue
            trainer.add(new)
            losses = trainer.update()
            if losses:
                self.losses.append(losses[-1])
                with self._lock:
                    self._published = (trainer.version, trainer.state_dict())
        return trainer.version

    def weights(self, have_version: int) -> tuple[int, dict | None]:
        """(version, state dict) when newer than `have_version`, else (version, None)."""
        with self._lock:
            version, state = self._published
        return (version, state) if version > have_version else (version, None)

    def stop(self) -> None:
        self._stop.set()

    def stats(self) -> dict:
        with self._lock:
            version = self._published[0]
        return {"version": version, "last_loss": self.losses[-1] if self.losses else None}


LabelStoreActor = ray.remote(num_cpus=0)(LabelStoreServer)
LabellerActor = ray.remote(max_concurrency=2)(LabellerLoop)
ClassifierActor = ray.remote(num_cpus=0, max_concurrency=2)(ClassifierLoop)


class RayLabelClient:
    """The learner connector's view of the labels (see the module docstring); waits at most `wait_s`."""

    def __init__(self, names: ActorNames, use_classifier: bool, wait_s: float = 0.05):
        self.names = names
        self.wait_s = wait_s
        self.use_classifier = use_classifier
        self.table: dict[str, int] = {}
        self.version = 0
        self._store = ray.get_actor(names.store)
        self._classifier = ray.get_actor(names.classifier) if use_classifier else None
        self._pull = None
        self._wpull = None
        self.model = None
        self.model_version = 0
        self._prob_cache: dict[str, float] = {}

    def refresh(self) -> None:
        """Issue a pull of the labels (and weights) added since our version, if none is in flight,
        and apply whatever has arrived within `wait_s` (the store answers in milliseconds; a slow
        answer is applied at a later call, never waited for)."""
        if self._pull is None:
            self._pull = self._store.since.remote(self.version)
        if ray.wait([self._pull], timeout=self.wait_s)[0]:
            self.version, new = ray.get(self._pull)
            self.table.update(new)
            self._pull = None
        if self._classifier is None:
            return
        if self._wpull is None:
            self._wpull = self._classifier.weights.remote(self.model_version)
        if ray.wait([self._wpull], timeout=self.wait_s)[0]:
            version, state = ray.get(self._wpull)
            self._wpull = None
            if state is not None:
                if self.model is None:
                    from rl.message_model import MessageClassifier
                    self.model = MessageClassifier()
                self.model.load_state_dict(state)
                self.model_version = version
                self._prob_cache = {}

    def submit(self, messages: list[str]) -> None:
        self._store.submit.remote(messages)   # fire and forget

    def probs(self, messages: list[str]) -> dict[str, float]:
        if self.model is None:
            return {m: 0.0 for m in messages}
        todo = [m for m in messages if m not in self._prob_cache]
        if todo:
            self._prob_cache.update(zip(todo, map(float, self.model.helpful_probs(todo))))
        return {m: self._prob_cache[m] for m in messages}


def client_factory(names: ActorNames, use_classifier: bool):
    """A picklable no-argument factory for the connector (runs inside the learner process)."""
    return lambda: RayLabelClient(names, use_classifier)
