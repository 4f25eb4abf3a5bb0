"""Pure loss functions for step-DPO (MCTS-DPO) and OREO: tensors in, tensors out.

Nothing here touches a model, a tokenizer or an optimizer; the learners in `rl/learners/` gather
the inputs (per-token log-probabilities, values, masks) and call these functions. Notation follows
`reference/algorithms.md` section 1: `rho_t = log pi(a_t|s_t) - log pi_ref(a_t|s_t)`,
`P_t = sum_{i >= t} rho_i`, `sg[.]` = stop-gradient, outcome reward R in {0, 1}.

Token alignment used throughout (the one-token shift of causal LMs):

- `input_ids [B, L]`; logits at position j predict token j+1, so per-token log-probs have shape
  `[B, L-1]` and index j scores `input_ids[:, j+1]` given `input_ids[:, :j+1]`.
- A value model's output at position j is V(state after token j) (algorithms.md 2.4 / 8.2).
  Dropping its last position gives `[B, L-1]`, aligned with the log-probs: index j holds the
  value of the state in which token j+1 is chosen. For the first response token that state ends
  at the last prompt token, which is where the state mask starts.

Losses:
- `step_dpo_loss`: conservative DPO with per-pair label smoothing (MCTS-DPO, arXiv 2405.00451,
  the DPO objective of Rafailov et al. 2023 eq. 7 with the smoothed target of MCTS-DPO; see
  algorithms.md 3.4): `-(1-eps) log sigma(beta h) - eps log sigma(-beta h)`.
- `oreo_value_loss`, `oreo_policy_loss`: OREO (arXiv 2412.16145) eq. 8 and eq. 9, with the
  stop-gradients of algorithms.md 2.2 / 8.1. They take "steps" of any granularity, so one
  implementation serves the token-level (each action token is a step), step-level (a reasoning
  step, algorithms.md 2.3) and response-level (the whole response, eq. 10) variants; `group_sum`
  and `group_first_index` turn per-token tensors into per-step ones.
- `exact_kl`: the full-vocabulary reverse KL(pi || pi_ref) per position, the regulariser OREO's
  released scripts use ("unbiased_kl"), not a sampled-token estimate.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

__all__ = [
    "DPOOutput", "token_logprobs", "masked_sum", "sequence_mean", "step_dpo_loss", "exact_kl",
    "reverse_cumsum", "group_sum", "group_first_index", "oreo_value_loss", "oreo_policy_loss",
]


def token_logprobs(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """Log-probability of every next token, computed in float32.

    Args:
        logits: [B, L, V] or [B, L-1, V] model outputs. With L positions the last one is dropped.
        input_ids: [B, L] the sequences the logits were computed on.

    Returns:
        [B, L-1]: index j is log p(input_ids[:, j+1] | input_ids[:, :j+1]).
    """
    if logits.shape[1] == input_ids.shape[1]:
        logits = logits[:, :-1]
    logits = logits.float()
    labels = input_ids[:, 1:].unsqueeze(-1)                                    # [B, L-1, 1]
    picked = logits.gather(-1, labels).squeeze(-1)                             # [B, L-1]
    return picked - torch.logsumexp(logits, dim=-1)


def masked_sum(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum of `x * mask` over the last dimension: [B, L] -> [B]."""
    return (x * mask).sum(-1)


def sequence_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the masked entries of each row, then over rows (OREO's reduction, algorithms.md 2.2).

    Rows with no masked entry contribute 0 (their count is clamped to 1).

    Args:
        x: [B, T] per-state (or per-token) quantity.
        mask: [B, T] 1 where the entry counts.

    Returns:
        A scalar.
    """
    mask = mask.to(x.dtype)
    return ((x * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()


class DPOOutput(NamedTuple):
    """Per-pair results of `step_dpo_loss`."""
    losses: torch.Tensor            # [B] per-pair loss (average it for the batch loss)
    margins: torch.Tensor           # [B] h = chosen log-ratio - rejected log-ratio (carries grad)
    chosen_rewards: torch.Tensor    # [B] beta * chosen log-ratio, detached
    rejected_rewards: torch.Tensor  # [B] beta * rejected log-ratio, detached


def step_dpo_loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
                  ref_chosen_logps: torch.Tensor, ref_rejected_logps: torch.Tensor,
                  label_smoothing: torch.Tensor | float = 0.0, *, beta: float) -> DPOOutput:
    """Step-level DPO with per-pair label smoothing (MCTS-DPO; algorithms.md 3.4).

    `h = [log pi(y_w) - log pi_ref(y_w)] - [log pi(y_l) - log pi_ref(y_l)]`, where each log-prob
    is summed only over the tokens after the shared prefix (the caller masks them; see
    `rl.data.collate_pairs`), and

        loss = -(1 - eps) * log sigma(beta * h) - eps * log sigma(-beta * h).

    With eps = 0 this is the DPO loss of Rafailov et al. (2023, eq. 7) and equals TRL's "sigmoid"
    loss; with eps = N_l / (N_w + N_l) it is MCTS-DPO's visit-count smoothing. Only the policy
    log-probs receive gradients; the reference log-probs are detached here.

    Args:
        policy_chosen_logps: [B] summed policy log-probs of the chosen step tokens.
        policy_rejected_logps: [B] same for the rejected step.
        ref_chosen_logps: [B] reference-model sums for the chosen step.
        ref_rejected_logps: [B] reference-model sums for the rejected step.
        label_smoothing: [B] or a float, eps in [0, 0.5] per pair (`StepPair.weight`).
        beta: inverse temperature of the implicit reward (0.1 in MCTS-DPO).

    Returns:
        `DPOOutput` with per-pair losses [B].
    """
    chosen_logratios = policy_chosen_logps - ref_chosen_logps.detach()           # [B]
    rejected_logratios = policy_rejected_logps - ref_rejected_logps.detach()     # [B]
    h = chosen_logratios - rejected_logratios                                    # [B]
    eps = torch.as_tensor(label_smoothing, dtype=h.dtype, device=h.device)
    losses = -(1.0 - eps) * F.logsigmoid(beta * h) - eps * F.logsigmoid(-beta * h)
    return DPOOutput(losses, h, beta * chosen_logratios.detach(), beta * rejected_logratios.detach())


def exact_kl(policy_logits: torch.Tensor, ref_logits: torch.Tensor) -> torch.Tensor:
    """Exact reverse KL(pi(.|s) || pi_ref(.|s)) over the full vocabulary, per position.

    `KL = sum_v pi(v|s) * (log pi(v|s) - log pi_ref(v|s))`, computed in float32. This is the
    regulariser of OREO's released scripts (algorithms.md 2.2 / 8.4), not the sampled-token
    estimator `exp(q - p) + (p - q) - 1`. Gradients flow into `policy_logits` only.

    Args:
        policy_logits: [..., V] policy logits at the positions of interest (e.g. action tokens).
        ref_logits: [..., V] reference logits at the same positions.

    Returns:
        [...] KL per position (>= 0).
    """
    logp = F.log_softmax(policy_logits.float(), dim=-1)
    logq = F.log_softmax(ref_logits.detach().float(), dim=-1)
    return (logp.exp() * (logp - logq)).sum(-1)


def reverse_cumsum(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """`P_t = sum_{i >= t} x_i * mask_i` along the last dimension: [B, T] -> [B, T]."""
    return (x * mask).flip(-1).cumsum(-1).flip(-1)


def group_sum(x: torch.Tensor, group_ids: torch.Tensor, num_groups: int) -> torch.Tensor:
    """Sum per-token values into per-step values.

    Args:
        x: [B, L] per-token quantity (e.g. log-ratios rho).
        group_ids: [B, L] long, the step each token belongs to (0..G-1), -1 for tokens outside
            every step (prompt, observations, padding).
        num_groups: G.

    Returns:
        [B, G] sums (0 for a step with no tokens).
    """
    B = x.shape[0]
    slot = torch.where(group_ids >= 0, group_ids, num_groups)                    # -1 -> dump slot G
    out = torch.zeros(B, num_groups + 1, dtype=x.dtype, device=x.device)
    return out.scatter_add(1, slot, x)[:, :num_groups]


def group_first_index(group_ids: torch.Tensor, num_groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Position of the first token of every step, and which steps exist.

    With label-aligned positions (index j scores token j+1), the first token of step k sits at
    the index where the state *before* the step is read: `values[:, :-1]` at that index is
    V(s_k) (see the module docstring).

    Args:
        group_ids: [B, L] long, as in `group_sum`.
        num_groups: G.

    Returns:
        index [B, G] long (0 where the step is missing) and mask [B, G] float (1 = step exists).
    """
    B, L = group_ids.shape
    slot = torch.where(group_ids >= 0, group_ids, num_groups)
    pos = torch.arange(L, device=group_ids.device).expand(B, L)
    first = torch.full((B, num_groups + 1), L, dtype=torch.long, device=group_ids.device)
    first = first.scatter_reduce(1, slot, pos, reduce="amin", include_self=True)[:, :num_groups]
    mask = (first < L).float()
    return first.masked_fill(first >= L, 0), mask


def oreo_value_loss(values: torch.Tensor, logratios: torch.Tensor, mask: torch.Tensor,
                    rewards: torch.Tensor, *, beta: float) -> torch.Tensor:
    """OREO value (critic) loss, paper eq. 8 (algorithms.md 2.2):

        L_V = mean_{t in S} ( V(s_t) + beta * sg[P_t] - R )^2,   P_t = sum_{i >= t} rho_i

    averaged over the states of each sequence, then over the batch. The log-ratios are detached
    here (the critic must not move the policy); only `values` receive gradients.

    Args:
        values: [B, T] V(s_t), the critic's value of the state before step t.
        logratios: [B, T] rho_t of step t (per token, or summed over the step's tokens).
        mask: [B, T] 1 for real steps, 0 for padding.
        rewards: [B] outcome reward R in {0, 1}.
        beta: KL-regularisation strength (0.03 in OREO).

    Returns:
        A scalar.
    """
    P = reverse_cumsum(logratios.detach(), mask)                                 # [B, T]
    err = values + beta * P - rewards.unsqueeze(-1).to(values.dtype)             # [B, T]
    return sequence_mean(err.square(), mask)


def oreo_policy_loss(values: torch.Tensor, logratios: torch.Tensor, mask: torch.Tensor,
                     rewards: torch.Tensor, *, beta: float) -> torch.Tensor:
    """OREO policy (actor) loss, paper eq. 9 (algorithms.md 2.2, "dro_actor_loss"):

        L_pi = mean_{t in S} ( sg[V(s_t)] + beta * rho_t + beta * sg[P_{t+1}] - R )^2

    Only the current step's log-ratio carries gradient; the value and the future sum
    `P_{t+1} = sum_{i > t} rho_i` are detached here, so every step has the same gradient scale.
    With one step per sequence (T = 1) this is the response-level loss of eq. 10. The KL
    regulariser (`exact_kl`, times alpha) is added by the caller.

    Args:
        values: [B, T] V(s_t) (detached here; pass the values computed before the critic step).
        logratios: [B, T] rho_t of step t, with gradient.
        mask: [B, T] 1 for real steps.
        rewards: [B] outcome reward R in {0, 1}.
        beta: KL-regularisation strength (0.03 in OREO).

    Returns:
        A scalar.
    """
    rho = logratios * mask
    future = (reverse_cumsum(logratios, mask) - rho).detach()                    # [B, T] P_{t+1}
    err = values.detach() + beta * rho + beta * future - rewards.unsqueeze(-1).to(logratios.dtype)
    return sequence_mean(err.square(), mask)
