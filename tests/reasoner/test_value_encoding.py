"""Search scores a state with the token sequence the critic was trained on (BPE tokenizer).

With a BPE tokenizer whose merges cross a step boundary ("\\n3" is one token here), tokenising
`prompt + response` in one go differs from the training encoding (prompt with special tokens,
every step separately: rl.data). `ValueModel.state_values` and `LearnedValue` must use the
training encoding; the whole-string `values` is kept for word-level tokenizers and is shown to
differ here, which is why the distinction exists.
"""
from __future__ import annotations

import pytest
import torch
from tokenizers import Tokenizer, models, trainers
from transformers import PreTrainedTokenizerFast

from envs.base import Problem
from reasoner.records import Trajectory
from reasoner.tiny import TinyModelConfig, build_tiny_model
from reasoner.value_model import ValueModel, encode_state
from rl.data import encode_trajectory
from search.evaluators import LearnedValue, SearchState

PROMPT = "Q: 3+2+3?\nA:\n"
STEPS = ["3+2=5\n", "5+3=8\n", "#### 8"]


@pytest.fixture(scope="module")
def bpe():
    """A byte-pair tokenizer with no pre-tokenizer, trained so merges cross newlines."""
    raw = Tokenizer(models.BPE(unk_token="<unk>"))
    trainer = trainers.BpeTrainer(vocab_size=64, special_tokens=["<pad>", "<eos>", "<unk>"])
    raw.train_from_iterator([PROMPT + "".join(STEPS)] * 50 + ["\n3\n5\n8 \n#### 3+5=8\n"] * 50, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
    whole = tok(PROMPT + "".join(STEPS))["input_ids"]
    assert whole != encode_state(tok, PROMPT, STEPS), "the fixture must merge across a step boundary"
    return tok


@pytest.fixture(scope="module")
def critic(bpe):
    model = build_tiny_model(TinyModelConfig(hidden_size=16, num_layers=2, num_heads=2, num_kv_heads=2,
                                             intermediate_size=32), bpe, seed=0)
    vm = ValueModel.from_policy(model, bpe)
    with torch.no_grad():
        vm.value_head.weight.copy_(torch.randn(vm.value_head.weight.shape, generator=torch.Generator().manual_seed(1)))
    return vm.eval()


def test_encode_state_is_the_training_encoding(bpe):
    traj = Trajectory(problem_id="p", policy_version=0, source="mcts", prompt=PROMPT, steps=tuple(STEPS), observations=("",) * 3, reward=1.0)
    trained = encode_trajectory(traj, bpe, append_eos=False).input_ids
    assert encode_state(bpe, PROMPT, STEPS) == trained
    assert encode_state(bpe, PROMPT, STEPS[:2]) == trained[:len(encode_state(bpe, PROMPT, STEPS[:2]))]


def test_learned_value_scores_with_the_training_encoding(bpe, critic):
    problem = Problem("p", "toy", "3+2+3?", "8")
    states = [SearchState(problem, PROMPT, "".join(STEPS[:k]), k, k == 3) for k in (1, 2, 3)]
    got = LearnedValue(critic).values(states)
    want = critic.values_from_ids([encode_state(bpe, PROMPT, STEPS[:k]) for k in (1, 2, 3)])
    assert got == pytest.approx(want, abs=1e-6)
    whole = critic.values([PROMPT + "".join(STEPS)])[0]
    assert whole != pytest.approx(got[2], abs=1e-6)    # the one-string encoding reads another sequence
