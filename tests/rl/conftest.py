"""Fixtures for the learner tests: a character-level tokenizer with readable ids, tiny Llama/Qwen2
models built from config, and small record sets (no downloads, CPU only)."""
from __future__ import annotations

import pytest

from reasoner.records import StepPair, Trajectory

# id = 3 + position in this string; <pad> = 0, <eos> = 1, <unk> = 2.
CHARS = "abcdefghijklmnopqrstuvwxyz0123456789 \n+=#:.?"


def char_tokenizer():
    """Every character is one token: 'a' -> 3, 'b' -> 4, ..., '0' -> 29, ' ' -> 39, '\\n' -> 40."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    vocab = {"<pad>": 0, "<eos>": 1, "<unk>": 2, **{c: i + 3 for i, c in enumerate(CHARS)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>",
                                   unk_token="<unk>", clean_up_tokenization_spaces=False)


def tiny_model(tokenizer, seed: int = 0, arch: str = "llama"):
    """A 2-layer causal LM (hidden 16) for `tokenizer`, deterministic in `seed`.

    Llama by default: transformers 5 maps the `qwen2` model type to `Qwen2Tokenizer`, so
    `AutoTokenizer` would re-tokenise our char tokenizer inside a Qwen2 checkpoint directory
    (see reasoner/tiny.py). Qwen2 ("qwen2") is used by in-memory tests.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM
    config_cls, model_cls = (Qwen2Config, Qwen2ForCausalLM) if arch == "qwen2" else (LlamaConfig, LlamaForCausalLM)
    cfg = config_cls(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                     num_attention_heads=2, num_key_value_heads=2, head_dim=8, max_position_embeddings=256,
                     tie_word_embeddings=False, pad_token_id=0, eos_token_id=1, bos_token_id=1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return model_cls(cfg)


@pytest.fixture(scope="session")
def tok():
    return char_tokenizer()


@pytest.fixture(scope="session")
def make_model(tok):
    """`make_model(seed, arch)` -> a fresh tiny policy for the session tokenizer."""
    return lambda seed=0, arch="llama": tiny_model(tok, seed, arch)


@pytest.fixture
def pairs() -> list[StepPair]:
    return [
        StepPair("p0", 0, 1, "q: 2+3\n", "2+3=5\n", "#5", "#6", 0.9, 0.1, 3, 1, 0.25),
        StepPair("p1", 0, 0, "q: 4+4\n", "", "4+4=8\n", "4+4=9\n", 0.8, 0.2, 2, 2, 0.5),
        StepPair("p2", 1, 1, "q: 1+1\n", "1+1=2\n", "#2", "#3", 1.0, 0.0, 4, 0, 0.0),
    ]


@pytest.fixture
def trajectories() -> list[Trajectory]:
    return [
        Trajectory("t0", 0, "sample", "q: 2+3\n", ("2+3=5\n", "#5"), ("", ""), 1.0),
        Trajectory("t1", 0, "sample", "q: 2+3\n", ("2+3=6\n", "#6"), ("", ""), 0.0),
        Trajectory("t2", 1, "mcts", "go\n", ("look\n", "take key\n"), ("a key\n", "done\n"), 1.0),
    ]


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory):
    """An HF checkpoint directory (tiny policy + tokenizer) on disk."""
    path = tmp_path_factory.mktemp("ckpt") / "policy"
    tiny_model(char_tokenizer()).save_pretrained(str(path))
    char_tokenizer().save_pretrained(str(path))
    return path
