"""The word-level tokenizer round-trips arithmetic text and loads back through AutoTokenizer."""
from transformers import AutoTokenizer

from envs.arith import load_arith


def test_round_trip_and_granularity(word_tokenizer):
    for p in load_arith("train", 50):
        text = "Q: " + p.question + "\nA:\n" + p.solution
        ids = word_tokenizer(text, add_special_tokens=False)["input_ids"]
        assert word_tokenizer.decode(ids) == text
        assert word_tokenizer.unk_token_id not in ids
    toks = word_tokenizer.convert_ids_to_tokens(word_tokenizer("Ben has 15 coins.\n#### 25")["input_ids"])
    assert toks == ["Ben", " has", " 1", "5", " coins", ".", "\n", "####", " 2", "5"]


def test_saved_checkpoint_loads_with_auto_tokenizer(tiny_policy_dir, word_tokenizer):
    tok = AutoTokenizer.from_pretrained(tiny_policy_dir)
    text = "Q: Mia has 9 eggs. She doubles her eggs.\nA:\n9*2=18\n#### 18"
    assert tok(text)["input_ids"] == word_tokenizer(text)["input_ids"]
    assert tok.decode(tok(text)["input_ids"]) == text
    assert tok.eos_token == "<eos>" and tok.pad_token == "<pad>"
