"""DPO on whole agent trajectories: OREO's DPO baseline for ALFWorld (algorithms.md 2.5, table O2).

Pairs come from rollouts of one game: a successful trajectory (reward 1) is preferred to a failed
one (reward 0) of the same game, at most `max_pairs` pairs per game (OREO: <= 5), drawn without
replacement by a seeded shuffle (`trajectory_pairs`). The two trajectories of a pair share only
the prompt, and each interleaves the agent's turns with the environment's observations, so the
DPO log-ratio of a trajectory sums the per-token log-ratios over its *turn tokens only*
(observations are not the policy's actions), EOS after the final turn included:

    h = sum_{turn tokens of y_w} rho  -  sum_{turn tokens of y_l} rho,       rho = log pi - log pi_ref
    loss = -log sigma(beta * h)                                           (`rl.losses.step_dpo_loss`, eps = 0)

with beta = 0.1 and lr 5e-7 for 2B models in the paper (1 epoch). A batch is [chosen; rejected]
rows, split with `.chunk(2)` (TRL). Optimiser, schedule and resumable state: `rl.training`.
Outputs (`fit`): `OUT/` HF checkpoint + tokenizer + learner_info.json, tensorboard, state.
"""
from __future__ import annotations

import json
import os
import random
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch

from reasoner.records import Trajectory
from rl import training
from rl.data import collate_trajectories, encode_trajectory, pad_id_of
from rl.losses import masked_sum, step_dpo_loss, token_logprobs

__all__ = ["TrajectoryDPOConfig", "TrajectoryDPOLearner", "trajectory_pairs"]


@dataclass
class TrajectoryDPOConfig:
    """Trajectory-DPO settings (the `trajectory_dpo` block of a recipe); paper: beta 0.1, lr 5e-7, 1 epoch."""
    beta: float = 0.1
    """DPO inverse temperature."""
    lr: float = 5e-7
    """Peak learning rate."""
    max_pairs: int = 5
    """Pairs per game at most (OREO's ALFWorld DPO baseline: 5)."""
    adam_betas: tuple[float, float] = (0.9, 0.95)
    """AdamW betas."""
    weight_decay: float = 0.0
    """AdamW weight decay (matrices only)."""
    warmup_ratio: float = 0.03
    """Fraction of optimizer steps spent in linear warm-up before the cosine."""
    grad_clip: float = 1.0
    """Gradient-norm clip."""
    batch_size: int = 4
    """Pairs per micro-batch."""
    grad_accum: int = 1
    """Micro-batches per optimizer step."""
    epochs: int = 1
    """Passes over the pairs (used when max_steps = 0)."""
    max_steps: int = 0
    """Optimizer steps (0 = derived from epochs)."""
    max_len: int = 2048
    """Pairs with a trajectory longer than this many tokens are skipped."""
    seed: int = 0
    """Seed of the pair sampling and the data order."""
    device: str = "auto"
    """auto, cpu, cuda or cuda:N."""
    dtype: str = "auto"
    """Compute dtype for autocast and the frozen reference."""

    def __post_init__(self) -> None:
        if self.beta <= 0 or self.lr <= 0 or self.max_pairs < 1 or self.batch_size < 1 or self.grad_accum < 1:
            raise ValueError("trajectory_dpo.beta, lr must be > 0; max_pairs, batch_size, grad_accum >= 1")
        self.adam_betas = tuple(self.adam_betas)


def trajectory_pairs(trajectories: Sequence[Trajectory], *, max_pairs: int, seed: int
                     ) -> list[tuple[Trajectory, Trajectory]]:
    """(won, lost) pairs of the same game (`problem_id`), at most `max_pairs` per game.

    All won x lost combinations of a game are shuffled with `random.Random(seed)` and the first
    `max_pairs` kept; games are visited in order of first appearance. Games with no success or no
    failure give no pair.
    """
    by_game: dict[str, list[Trajectory]] = defaultdict(list)
    for t in trajectories:
        by_game[t.problem_id].append(t)
    rng = random.Random(seed)
    out = []
    for trajs in by_game.values():
        combos = [(w, l) for w in trajs if w.reward == 1.0 for l in trajs if l.reward == 0.0]
        rng.shuffle(combos)
        out += combos[:max_pairs]
    return out


class TrajectoryDPOLearner:
    """DPO of `policy` against frozen `ref_policy` on (won, lost) trajectory pairs; see the module docstring."""

    def __init__(self, policy, ref_policy, tokenizer, cfg: TrajectoryDPOConfig):
        from reasoner.loading import resolve_device, resolve_dtype
        self.cfg = cfg
        self.device = torch.device(resolve_device(cfg.device))
        self.dtype = resolve_dtype(cfg.dtype, self.device.type)
        self.policy = training.prepare_trainable(policy, self.device)
        self.ref = training.freeze(ref_policy, self.device, self.dtype)
        self.tokenizer = tokenizer
        self.pad_id = pad_id_of(tokenizer)
        self.opt = training.build_adamw(self.policy, lr=cfg.lr, betas=cfg.adam_betas, weight_decay=cfg.weight_decay)
        self.sched = None
        self.step = 0
        self._pairs: list = []
        self.policy_version = 0

    def _turn_logps(self, model, batch) -> torch.Tensor:
        logits = training.causal_lm_logits(model, batch.input_ids, batch.attention_mask)
        return masked_sum(token_logprobs(logits, batch.input_ids), batch.action_mask)      # [2B]

    def train_step(self) -> dict[str, float]:
        cfg = self.cfg
        self.opt.zero_grad(set_to_none=True)
        totals = {"loss": 0.0, "margin": 0.0, "accuracy": 0.0}
        for k in range(cfg.grad_accum):
            idx = training.micro_batch_indices(len(self._pairs), cfg.batch_size, cfg.seed, self.step * cfg.grad_accum + k)
            rows = [self._pairs[i][0] for i in idx] + [self._pairs[i][1] for i in idx]    # [chosen; rejected]
            batch = collate_trajectories(rows, self.pad_id).to(self.device)
            with training.autocast(self.device, self.dtype):
                with torch.no_grad():
                    ref_c, ref_r = self._turn_logps(self.ref, batch).chunk(2)
                pol_c, pol_r = self._turn_logps(self.policy, batch).chunk(2)
            out = step_dpo_loss(pol_c, pol_r, ref_c, ref_r, 0.0, beta=cfg.beta)
            (out.losses.mean() / cfg.grad_accum).backward()
            totals["loss"] += out.losses.mean().item() / cfg.grad_accum
            totals["margin"] += out.margins.mean().item() / cfg.grad_accum
            totals["accuracy"] += (out.margins > 0).float().mean().item() / cfg.grad_accum
        totals["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(self.policy.parameters(), cfg.grad_clip))
        totals["lr"] = self.sched.get_last_lr()[0]
        self.opt.step()
        self.sched.step()
        self.step += 1
        return totals

    def state_dict(self) -> dict:
        return {"step": self.step, "rng": training.capture_rng(), "policy": training.trainable_state_dict(self.policy),
                "opt": self.opt.state_dict(), "sched": self.sched.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        training.load_trainable_state_dict(self.policy, state["policy"])
        self.opt.load_state_dict(state["opt"])
        self.sched.load_state_dict(state["sched"])
        training.restore_rng(state["rng"])
        self.step = int(state["step"])

    def fit(self, trajectories: Sequence[Trajectory], out_dir: str | os.PathLike | None = None, *,
            progress: bool = True) -> dict:
        """Build the pairs, train until the step budget (resuming from `out_dir/state`), save to `out_dir`.

        Raises:
            ValueError: no game has both a success and a failure, or every pair is too long.
        """
        cfg = self.cfg
        pairs = trajectory_pairs(trajectories, max_pairs=cfg.max_pairs, seed=cfg.seed)
        if not pairs:
            raise ValueError(f"trajectory DPO: no game among {len(trajectories)} trajectories has both a success "
                             "and a failure")
        enc = [(encode_trajectory(w, self.tokenizer), encode_trajectory(l, self.tokenizer)) for w, l in pairs]
        self._pairs = [p for p in enc if max(len(p[0].input_ids), len(p[1].input_ids)) <= cfg.max_len]
        if not self._pairs:
            raise ValueError(f"trajectory DPO: all {len(pairs)} pairs are longer than max_len={cfg.max_len}")
        self.policy_version = max(t.policy_version for t in trajectories) + 1
        total = training.num_optimizer_steps(len(self._pairs), batch_size=cfg.batch_size, grad_accum=cfg.grad_accum,
                                             epochs=cfg.epochs, max_steps=cfg.max_steps)
        self.sched = training.build_scheduler(self.opt, total_steps=total, warmup_ratio=cfg.warmup_ratio)
        out = Path(out_dir) if out_dir is not None else None
        writer = training.open_writer(out / "tensorboard" if out else None)
        try:
            summary = training.run_loop(self, total_steps=total,
                                        state_path=out / "state" / training.STATE_FILE if out else None,
                                        writer=writer, tag="trajectory_dpo", progress=progress,
                                        meta={"algo": "trajectory_dpo", "records": len(self._pairs)})
        finally:
            if writer is not None:
                writer.close()
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            self.policy.save_pretrained(str(out))
            self.tokenizer.save_pretrained(str(out))
            info = {"algo": "trajectory_dpo", "steps": self.step, "policy_version": self.policy_version,
                    "pairs": len(self._pairs), "config": asdict(cfg)}
            (out / "learner_info.json").write_text(json.dumps(info, indent=2, default=str) + "\n")
        return {**summary, "pairs": len(self._pairs), "skipped": len(pairs) - len(self._pairs)}
