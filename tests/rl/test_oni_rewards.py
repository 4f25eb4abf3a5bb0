"""ONI reward functions and mixing on hand-built chunks (exact values)."""
from __future__ import annotations

import numpy as np
import pytest

from rl.oni_rewards import (ONIRewardConfig, RewardKind, classification_rewards, count_scaled, mix_rewards,
                            rescore_transitions, retrieval_rewards)


def test_retrieval_unlabelled_is_zero():
    table = {"You kill the newt!": 1, "It's a wall.": 0, "": 0}
    r = retrieval_rewards(["You kill the newt!", "It's a wall.", "never seen", ""], table)
    np.testing.assert_array_equal(r, [1, 0, 0, 0])


def test_classification_threshold():
    np.testing.assert_array_equal(classification_rewards(np.array([0.2, 0.5, 0.51, 0.9]), 0.5), [0, 0, 1, 1])


def test_count_scaling_beta_3():
    np.testing.assert_allclose(count_scaled(np.array([1, 1, 1, 0]), np.array([1, 2, 3, 1]), 3.0),
                               [1, 1 / 8, 1 / 27, 0], rtol=1e-6)
    with pytest.raises(ValueError):
        count_scaled(np.array([1.0]), np.array([0]), 3.0)


def test_mixing_clips_extrinsic_before_weighting():
    cfg = ONIRewardConfig(intrinsic_coef=0.4, extrinsic_coef=10.0, reward_clip=10.0)
    out = mix_rewards(np.array([50.0, -20.0, 0.5, 0.0]), np.array([0.0, 0.0, 1.0, 0.125]), cfg)
    np.testing.assert_allclose(out, [100.0, -100.0, 5.4, 0.05], rtol=1e-6)


def test_rescore_chunk():
    cfg = ONIRewardConfig(kind=RewardKind.RETRIEVAL, intrinsic_coef=0.4, extrinsic_coef=10.0)
    msgs = ["You kill the newt!", "You kill the newt!", "", "unlabelled"]
    mixed, r_int = rescore_transitions(np.array([0.0, 0.0, 0.0, 1.0]), msgs, [1, 2, 1, 1], cfg,
                                       table={"You kill the newt!": 1, "": 0})
    np.testing.assert_allclose(r_int, [1.0, 0.125, 0.0, 0.0])
    np.testing.assert_allclose(mixed, [0.4, 0.05, 0.0, 10.0], rtol=1e-6)
    none = ONIRewardConfig(kind="none", extrinsic_coef=10.0)
    mixed, r_int = rescore_transitions(np.array([0.0, 1.0]), ["a", "b"], [1, 1], none)
    np.testing.assert_allclose(mixed, [0.0, 10.0])
    cls = ONIRewardConfig(kind="classification", intrinsic_coef=1.0, extrinsic_coef=0.0)
    mixed, _ = rescore_transitions(np.zeros(2), ["a", "b"], [2, 1], cls, probs={"a": 0.9, "b": 0.1})
    np.testing.assert_allclose(mixed, [0.125, 0.0])
    with pytest.raises(ValueError):
        rescore_transitions(np.zeros(2), ["a"], [1, 1], cfg)
