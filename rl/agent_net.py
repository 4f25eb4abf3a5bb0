"""The NetHack agent's actor-critic network over a glyph crop and the bottom-line statistics.

Inputs (from `envs.nethack_rl.AgentObservationWrapper`):
    glyphs  [B, C, C] int   glyph ids of the C x C window centred on the agent (PAD_GLYPH outside)
    blstats [B, 27]   float NLE bottom-line statistics

Encoder (a small version of ONI's: crop around the agent + bottom-line stats, algorithms.md 5.6;
no recurrence, no message encoder):
    glyph embedding 16 -> Conv2d(3x3, 32) -> ReLU -> Conv2d(3x3, 32) -> ReLU -> flatten
    blstats -> sign(x) * log(1 + |x|) -> Linear(27, 64) -> ReLU
    concat -> Linear(., hidden) -> ReLU -> policy logits [B, A] and value [B] heads.
The log squashing keeps score, gold and turn counters (up to ~1e5) in a range SGD tolerates.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["NetHackAgentNet"]


class NetHackAgentNet(nn.Module):
    """Shared-encoder actor-critic (see the module docstring)."""

    def __init__(self, num_actions: int, *, crop: int, num_glyphs: int, num_blstats: int = 27,
                 embed_dim: int = 16, channels: int = 32, hidden: int = 256):
        super().__init__()
        self.embed = nn.Embedding(num_glyphs + 1, embed_dim)
        self.conv = nn.Sequential(nn.Conv2d(embed_dim, channels, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(), nn.Flatten())
        self.stats = nn.Sequential(nn.Linear(num_blstats, 64), nn.ReLU())
        self.body = nn.Sequential(nn.Linear(channels * crop * crop + 64, hidden), nn.ReLU())
        self.pi = nn.Linear(hidden, num_actions)
        self.vf = nn.Linear(hidden, 1)
        nn.init.orthogonal_(self.pi.weight, gain=0.01)
        nn.init.zeros_(self.pi.bias)

    def features(self, glyphs: torch.Tensor, blstats: torch.Tensor) -> torch.Tensor:
        """[B, hidden] shared features."""
        g = self.embed(glyphs.long()).permute(0, 3, 1, 2)               # [B, E, C, C]
        s = torch.sign(blstats) * torch.log1p(blstats.abs())
        return self.body(torch.cat([self.conv(g), self.stats(s.float())], dim=-1))

    def forward(self, glyphs: torch.Tensor, blstats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits [B, A], value [B])."""
        h = self.features(glyphs, blstats)
        return self.pi(h), self.vf(h).squeeze(-1)
