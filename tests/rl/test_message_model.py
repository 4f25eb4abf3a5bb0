"""ONI-Classification message model: shapes, encoding, training moves toward the labels."""
from __future__ import annotations

import numpy as np
import torch

from rl.message_model import MessageClassifier, MessageModelConfig, MessageModelTrainer, encode_messages


def test_encode_messages():
    x = encode_messages(["ab", "", "c" * 300, "caf\u00e9"])
    assert x.shape == (4, 256) and x.dtype == np.uint8
    assert list(x[0, :3]) == [97, 98, 0] and not x[1].any() and (x[2] == 99).all() and x[3, 3] == 0xE9


def test_classifier_shapes():
    logits = MessageClassifier()(torch.from_numpy(encode_messages(["You kill the newt!", ""])))
    assert logits.shape == (2, 2)


def test_training_learns_the_labels_and_round_trips_weights():
    cfg = MessageModelConfig(lr=1e-3, batch_size=16, steps_per_update=40)
    tr = MessageModelTrainer(cfg, seed=0)
    tr.add({"You kill the newt!": 1, "You kill the jackal!": 1, "It's a wall.": 0, "The door is closed.": 0})
    losses = tr.update()
    assert len(losses) == 40 and losses[-1] < losses[0] and tr.version == 1
    p = tr.model.helpful_probs(["You kill the newt!", "It's a wall."])
    assert p[0] > 0.5 > p[1]
    copy = MessageClassifier()
    copy.load_state_dict(tr.state_dict())
    np.testing.assert_allclose(copy.helpful_probs(["You kill the newt!"]), p[:1], rtol=1e-6)
    full = MessageModelTrainer(MessageModelConfig(max_labels=2, steps_per_update=1), seed=0)
    full.add({"a": 1, "b": 0})
    assert full.update() == []            # ONI trains only while |H| < max_labels
