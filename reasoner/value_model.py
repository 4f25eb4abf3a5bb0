"""The value model: a causal-LM backbone with a scalar head (OREO's critic, arXiv 2412.16145 §3).

`ValueModel` = any HF transformer backbone (loaded with `AutoModel`, e.g. the body of the policy
checkpoint) + `nn.Linear(hidden, 1, bias=False)` initialised to zero, as in OREO's code
(algorithms.md 2.4): a fresh critic predicts V = 0 everywhere and learns the scale of R from data.

Conventions (algorithms.md 8.2 / 8.3), recorded in every saved directory:
- Position: the output at position j is V(state after token j), i.e. the value of the prefix that
  ends with token j. Training drops the last position so index j lines up with the log-prob of
  token j+1 (`rl.losses`); scoring a state reads the position of the state's last token. Both
  therefore read the same number for the same prefix (tested in tests/reasoner/test_value_model.py).
- Reward: outcome reward R in {0, 1}; with beta small, V(s) approximates the success probability.

Checkpoint layout (an HF-format directory): the backbone's `config.json` + `model.safetensors`
(`save_pretrained`), `value_head.safetensors` (key `weight`, shape [1, hidden]),
`value_config.json` (conventions), and the tokenizer files when a tokenizer is attached.

`values(states)` is the batched scorer that search uses as a `ValueFn`
(`values(states: list[str]) -> list[float]`; states are full prompt + partial-solution strings).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from reasoner.lora import save_merged
from reasoner.records import REWARD_CONVENTION

__all__ = ["ValueModel", "VALUE_HEAD_FILE", "VALUE_CONFIG_FILE", "POSITION_CONVENTION", "encode_state"]

VALUE_HEAD_FILE = "value_head.safetensors"
VALUE_CONFIG_FILE = "value_config.json"
POSITION_CONVENTION = "output at position j = V(state after token j); a state is read at its last token"


def encode_state(tokenizer, prompt: str, steps: Sequence[str]) -> list[int]:
    """Token ids of a state exactly as the learners encode it (`rl.data.encode_trajectory`).

    The prompt is tokenised with the tokenizer's special tokens and every step separately without
    them; the ids are concatenated. Tokenising `prompt + response` in one go can merge tokens
    across a step boundary for BPE tokenizers, giving the critic a sequence it never saw in
    training (tests/reasoner/test_value_model.py checks the two encodings agree with rl.data).
    """
    ids = list(tokenizer(prompt, add_special_tokens=True)["input_ids"]) if prompt else []
    for step in steps:
        if step:
            ids += tokenizer(step, add_special_tokens=False)["input_ids"]
    return ids


def _position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions counted over real tokens only, so left and right padding give the same values."""
    pos = attention_mask.long().cumsum(-1) - 1
    return pos.clamp(min=0)


class ValueModel(nn.Module):
    """Causal-LM backbone + zero-initialised linear value head; see the module docstring.

    Args:
        backbone: an HF base model (`AutoModel`) returning `last_hidden_state`; may be a peft model.
        tokenizer: the tokenizer used by `values` (optional for training-only use).
    """

    def __init__(self, backbone: nn.Module, tokenizer=None):
        super().__init__()
        self.backbone = backbone
        hidden = backbone.config.get_text_config().hidden_size
        self.value_head = nn.Linear(hidden, 1, bias=False)
        nn.init.zeros_(self.value_head.weight)
        self.tokenizer = tokenizer

    # ---------------------------------------------------------------- construction / checkpoints
    @classmethod
    def from_policy(cls, policy, tokenizer=None) -> "ValueModel":
        """A fresh critic whose backbone is a copy of `policy`'s body (a model or a checkpoint path).

        From a path, `AutoModel.from_pretrained` loads the body and drops the LM head. From an
        in-memory causal LM, its `base_model` is deep-copied (the policy itself is not shared).
        """
        import copy
        if isinstance(policy, (str, os.PathLike)):
            from transformers import AutoModel
            from transformers.utils import logging as hf_logging
            verbosity = hf_logging.get_verbosity()
            hf_logging.set_verbosity_error()   # the dropped LM head is expected, not worth a report
            try:
                return cls(AutoModel.from_pretrained(str(policy)), tokenizer)
            finally:
                hf_logging.set_verbosity(verbosity)
        return cls(copy.deepcopy(policy.base_model), tokenizer)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *, device: str | torch.device = "cpu",
                        dtype: torch.dtype | None = None, tokenizer=None) -> "ValueModel":
        """Load a directory written by `save_pretrained` (tokenizer too, if it was saved)."""
        from safetensors.torch import load_file
        from transformers import AutoModel, AutoTokenizer
        path = Path(path)
        if not (path / VALUE_HEAD_FILE).exists():
            raise FileNotFoundError(f"{path} is not a value-model directory (no {VALUE_HEAD_FILE})")
        kwargs = {"dtype": dtype} if dtype is not None else {}
        backbone = AutoModel.from_pretrained(str(path), **kwargs)
        if tokenizer is None and (path / "tokenizer_config.json").exists():
            tokenizer = AutoTokenizer.from_pretrained(str(path))
        model = cls(backbone, tokenizer)
        model.value_head.load_state_dict(load_file(str(path / VALUE_HEAD_FILE)))
        return model.to(device)

    def save_pretrained(self, path: str | os.PathLike) -> Path:
        """Write the HF-format directory (LoRA adapters, if any, merged)."""
        from safetensors.torch import save_file
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_merged(self.backbone, path)  # LoRA deltas folded in; the training model is untouched
        save_file({"weight": self.value_head.weight.detach().contiguous().cpu()}, str(path / VALUE_HEAD_FILE))
        info = {"reward_convention": REWARD_CONVENTION, "position_convention": POSITION_CONVENTION,
                "head": "linear(hidden, 1, bias=False), zero-initialised", "format_version": 1}
        (path / VALUE_CONFIG_FILE).write_text(json.dumps(info, indent=2) + "\n")
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(str(path))
        return path

    # ---------------------------------------------------------------- forward and scoring
    @property
    def device(self) -> torch.device:
        return self.value_head.weight.device

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Values at every position.

        Args:
            input_ids: [B, L] token ids (left or right padded).
            attention_mask: [B, L] 1 on real tokens.

        Returns:
            [B, L] float32: index j is V(state after token j) (meaningless on padding).
        """
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask,
                            position_ids=_position_ids(attention_mask), use_cache=False)
        hidden = out.last_hidden_state                                            # [B, L, H]
        return self.value_head(hidden.to(self.value_head.weight.dtype)).squeeze(-1).float()

    @torch.no_grad()
    def values_from_ids(self, sequences: Sequence[Sequence[int]], *, batch_size: int = 16,
                        max_len: int | None = None) -> list[float]:
        """V of each token sequence, read at its last token (left-padded batches, no grad).

        Sequences longer than `max_len` keep their last `max_len` tokens (the scored position stays
        the last token). An empty sequence is an error: a state has at least its prompt.
        """
        pad = 0
        if self.tokenizer is not None:
            pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        was_training = self.training
        self.eval()
        out: list[float] = []
        for start in range(0, len(sequences), batch_size):
            chunk = [list(s)[-max_len:] if max_len else list(s) for s in sequences[start:start + batch_size]]
            if any(len(s) == 0 for s in chunk):
                raise ValueError("values: cannot score an empty state")
            width = max(len(s) for s in chunk)
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for i, s in enumerate(chunk):
                ids[i, width - len(s):] = torch.tensor(s, dtype=torch.long)
                mask[i, width - len(s):] = 1
            v = self(ids.to(self.device), mask.to(self.device))[:, -1]             # [b] last token
            out.extend(v.tolist())
        self.train(was_training)
        return out

    def state_values(self, prompts: Sequence[str], steps: Sequence[Sequence[str]], *, batch_size: int = 16,
                     max_len: int | None = None) -> list[float]:
        """V of each state given as its prompt and its steps, encoded as in training (`encode_state`).

        This is what search calls (`search.evaluators.LearnedValue`): with a BPE tokenizer it
        reads the same token sequence the critic was trained on.
        """
        if self.tokenizer is None:
            raise ValueError("ValueModel.state_values needs a tokenizer (pass one to the constructor)")
        ids = [encode_state(self.tokenizer, p, s) for p, s in zip(prompts, steps, strict=True)]
        return self.values_from_ids(ids, batch_size=batch_size, max_len=max_len)

    def values(self, states: list[str], *, batch_size: int = 16, max_len: int | None = None) -> list[float]:
        """V of each state string (prompt + partial solution), tokenised whole.

        Each string is tokenised with the tokenizer's special tokens and scored at its last token.
        For a word-level tokenizer this equals `state_values`; for a BPE tokenizer prefer
        `state_values`, which keeps the training encoding.
        """
        if self.tokenizer is None:
            raise ValueError("ValueModel.values needs a tokenizer (pass one to the constructor)")
        ids = [self.tokenizer(s, add_special_tokens=True)["input_ids"] for s in states]
        return self.values_from_ids(ids, batch_size=batch_size, max_len=max_len)
