"""Prompt templates: how a question becomes the text the policy continues.

Two styles:
- PLAIN: a fixed format string, `"Q: {question}\\nA:\\n"` by default (the tiny arithmetic policy,
  and MCTS-DPO's "QUESTION: ... ANSWER:" family of prompts).
- CHAT: the checkpoint's own chat template (`tokenizer.apply_chat_template`) with a system
  message asking for one step per line and a final answer line, as OREO's evaluation does for
  Qwen models (algorithms.md section 2.9).

The answer format the system message asks for must match the grader: `#### <answer>` for GSM8K
and arithmetic, `\\boxed{}` for MATH.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["PromptStyle", "PromptConfig", "render_prompt", "GSM8K_SYSTEM", "MATH_SYSTEM"]

GSM8K_SYSTEM = ("Solve the problem step by step, one step per line. "
                "Write the final answer on the last line as '#### <answer>'.")
MATH_SYSTEM = ("Solve the problem step by step. "
               "Put the final answer within \\boxed{}.")


class PromptStyle(str, enum.Enum):
    PLAIN = "plain"
    CHAT = "chat"


@dataclass
class PromptConfig:
    """How questions are turned into prompts (the `prompt` block of a recipe)."""
    style: PromptStyle = PromptStyle.PLAIN
    """plain: format string; chat: the tokenizer's chat template with `system`."""
    plain_format: str = "Q: {question}\nA:\n"
    """Format string for the plain style; must contain {question}."""
    system: str = GSM8K_SYSTEM
    """System message for the chat style ("" for none)."""

    def __post_init__(self) -> None:
        if "{question}" not in self.plain_format:
            raise ValueError("prompt.plain_format must contain {question}")


def render_prompt(question: str, cfg: PromptConfig, tokenizer=None) -> str:
    """The text the policy continues for `question`.

    Args:
        question: the problem statement.
        cfg: template settings.
        tokenizer: an HF tokenizer with a chat template (required for the chat style).
    """
    if cfg.style == PromptStyle.PLAIN:
        return cfg.plain_format.replace("{question}", question)
    if tokenizer is None or getattr(tokenizer, "chat_template", None) is None:
        raise ValueError("prompt.style=chat needs a tokenizer with a chat template")
    messages = ([{"role": "system", "content": cfg.system}] if cfg.system else [])
    messages.append({"role": "user", "content": question})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
