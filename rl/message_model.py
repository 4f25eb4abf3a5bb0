"""ONI-Classification's message model: a character-level CNN p_psi(helpful | m) trained on labels.

Architecture (algorithms.md 5.4, re-implemented from the description): the message as 256 bytes
(latin-1, NUL-padded, as NLE stores it) -> byte embedding 32 -> Conv1d(k=7, 64) -> max-pool 3 ->
Conv1d(k=7, 64) -> max-pool 3 -> four Conv1d(k=3, 64) -> max-pool 3 -> flatten (5 x 64) ->
FC 128 -> MLP [512, 512] (ReLU, dropout 0.1) -> 2 logits. Lengths: 256 -> 250 -> 83 -> 77 -> 25
-> 23, 21, 19, 17 -> 5.

Training (`MessageModelTrainer.update`): cross-entropy on (message, label) pairs drawn uniformly
from the label table, Adam lr 1e-4, batch 256, 32 gradient steps each time new labels arrive,
and only while the table holds fewer than 25,000 labels (ONI's schedule).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from rl.oni_rewards import MessageModelConfig

__all__ = ["MessageModelConfig", "MessageClassifier", "MessageModelTrainer", "encode_messages", "MESSAGE_LEN"]

MESSAGE_LEN = 256


def encode_messages(messages: Sequence[str]) -> np.ndarray:
    """Messages as uint8 [B, 256] (latin-1 bytes, NUL-padded, cut at 256; unknown chars -> '?')."""
    out = np.zeros((len(messages), MESSAGE_LEN), dtype=np.uint8)
    for i, m in enumerate(messages):
        raw = m.encode("latin-1", errors="replace")[:MESSAGE_LEN]
        out[i, :len(raw)] = np.frombuffer(raw, dtype=np.uint8)
    return out


class MessageClassifier(nn.Module):
    """Char-CNN over message bytes -> 2 logits (unhelpful, helpful)."""

    def __init__(self, dropout: float = 0.1):
        super().__init__()
        self.embed = nn.Embedding(256, 32)
        convs = [nn.Conv1d(32, 64, 7), nn.ReLU(), nn.MaxPool1d(3), nn.Conv1d(64, 64, 7), nn.ReLU(), nn.MaxPool1d(3)]
        for _ in range(4):
            convs += [nn.Conv1d(64, 64, 3), nn.ReLU()]
        convs.append(nn.MaxPool1d(3))
        self.convs = nn.Sequential(*convs)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(5 * 64, 128), nn.ReLU(),
                                  nn.Linear(128, 512), nn.ReLU(), nn.Dropout(dropout),
                                  nn.Linear(512, 512), nn.ReLU(), nn.Dropout(dropout), nn.Linear(512, 2))

    def forward(self, message_bytes: torch.Tensor) -> torch.Tensor:
        """message_bytes: [B, 256] integer -> logits [B, 2]."""
        x = self.embed(message_bytes.long()).transpose(1, 2)   # [B, 32, 256]
        return self.head(self.convs(x))

    @torch.no_grad()
    def helpful_probs(self, messages: Sequence[str]) -> np.ndarray:
        """p(helpful | m) for each message (eval mode). Returns float32 [B]."""
        if not messages:
            return np.zeros(0, dtype=np.float32)
        was = self.training
        self.eval()
        logits = self(torch.from_numpy(encode_messages(messages)))
        self.train(was)
        return torch.softmax(logits, dim=-1)[:, 1].float().numpy()


class MessageModelTrainer:
    """Trains a `MessageClassifier` on a growing label table (see the module docstring)."""

    def __init__(self, cfg: MessageModelConfig, seed: int = 0):
        self.cfg = cfg
        torch.manual_seed(seed)
        self.model = MessageClassifier(cfg.dropout)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.rng = np.random.default_rng(seed)
        self.messages: list[str] = []
        self.labels: list[int] = []
        self.version = 0          # weight updates so far
        self.steps = 0

    def add(self, labels: dict[str, int]) -> None:
        for m, lab in labels.items():
            self.messages.append(m)
            self.labels.append(int(lab))

    def update(self) -> list[float]:
        """`steps_per_update` gradient steps on uniform samples of the table; returns the losses."""
        if not self.messages or len(self.messages) >= self.cfg.max_labels:
            return []
        x_all = torch.from_numpy(encode_messages(self.messages))
        y_all = torch.tensor(self.labels, dtype=torch.long)
        self.model.train()
        losses = []
        for _ in range(self.cfg.steps_per_update):
            idx = torch.from_numpy(self.rng.integers(0, len(self.messages), size=self.cfg.batch_size))
            loss = nn.functional.cross_entropy(self.model(x_all[idx]), y_all[idx])
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            losses.append(float(loss.detach()))
        self.steps += len(losses)
        self.version += 1
        return losses

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}
