"""The SFT learner: gradient accumulation gives the same update, labels cover the response + EOS only."""
import copy

import pytest
import torch

from rl.learners.sft import SFTConfig, SFTLearner, collate_sft


def test_collate_masks_the_prompt():
    ids, mask, labels = collate_sft([([5, 6], [7, 8, 1]), ([9], [3])], pad_id=0, max_len=4)
    assert ids.tolist() == [[5, 6, 7, 8], [9, 3, 0, 0]]
    assert mask.tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert labels.tolist() == [[-100, -100, 7, 8], [-100, 3, -100, -100]]


def test_grad_accumulation_matches_one_big_batch(tiny_policy_dir):
    from reasoner.loading import load_policy
    model, tok = load_policy(tiny_policy_dir, "cpu")
    data = [("Q: Ben has 3 coins.\nA:\n", "3+4=7\n#### 7"), ("Q: Mia has 2 eggs.\nA:\n", "#### 2"),
            ("Q: Tom has 5 pens.\nA:\n", "5*2=10\n10-1=9\n#### 9"), ("Q: Ana has 1 toys.\nA:\n", "#### 1")]
    results = []
    for accum in (1, 2, 4):
        m = copy.deepcopy(model)
        cfg = SFTConfig(steps=1, batch_size=4, grad_accum=accum, warmup_steps=1, lr=1e-2, device="cpu")
        learner = SFTLearner(m, tok, cfg, lambda step: data)
        metrics = learner.train_step()
        # compare gradients (Adam's first step is ~lr*sign(g), which amplifies float noise on tiny g)
        results.append((metrics["loss"], [p.grad.detach().clone() for p in m.parameters()]))
    for loss, grads in results[1:]:
        assert loss == pytest.approx(results[0][0], rel=1e-5)
        assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-7) for a, b in zip(grads, results[0][1]))
    with pytest.raises(ValueError):
        SFTConfig(batch_size=6, grad_accum=4)
