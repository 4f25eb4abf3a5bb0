"""Shared test setup: pinned torch threads, seeded RNGs, tiny models built from config."""
from __future__ import annotations

import os

# Pin threads before torch is imported anywhere: 2 shared cores crawl with more.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import random

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _seed_everything():
    random.seed(0)
    np.random.seed(0)
    try:
        import torch
    except ImportError:
        return
    torch.manual_seed(0)
    torch.set_num_threads(1)


# ---------------------------------------------------------------------------- tiny models
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"
TRAINED_POLICY_DIR = DATA_DIR / "tiny_arith_policy"


@pytest.fixture(scope="session")
def word_tokenizer():
    """The closed-vocabulary word tokenizer of the arithmetic task."""
    from envs.arith import vocabulary_words
    from reasoner.tokenizer import build_word_tokenizer
    return build_word_tokenizer(vocabulary_words())


@pytest.fixture(scope="session")
def tiny_policy_dir(tmp_path_factory, word_tokenizer):
    """An HF checkpoint directory of a random tiny Qwen2 (hidden 32) with the word tokenizer."""
    from reasoner.tiny import TinyModelConfig, build_tiny_model
    model = build_tiny_model(TinyModelConfig(hidden_size=32, num_heads=2, num_kv_heads=2,
                                             intermediate_size=64), word_tokenizer, seed=0)
    out = tmp_path_factory.mktemp("tiny_policy")
    model.save_pretrained(out)
    word_tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def trained_policy_dir():
    """The committed tiny policy trained by `launch.train_sft` on arithmetic (see its README)."""
    if not (TRAINED_POLICY_DIR / "config.json").exists():
        pytest.skip("tests/data/tiny_arith_policy is missing")
    return TRAINED_POLICY_DIR
