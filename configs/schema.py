"""The root experiment config, composed from the component configs that live next to their code.

Only `launch/` turns YAML + CLI into these objects (`launch.config.load_config`); every component
receives its own block. `configs/_generated/defaults.yaml` is the full default dump, regenerated
by a test that fails on any unreviewed drift (`python -m launch.config --dump-defaults` rewrites it).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from envs.tasks import TaskConfig
from reasoner.generation import GeneratorConfig
from reasoner.steps import StepFormat
from reasoner.templates import PromptConfig
from reasoner.tiny import TinyModelConfig
from rl.learners.sft import SFTConfig

__all__ = ["ModelConfig", "EvalConfig", "ExperimentConfig"]


@dataclass
class ModelConfig:
    """Which policy to start from (the `model` block)."""
    policy: str = ""
    """HF checkpoint directory (or hub name where a hub is reachable); "" = train the tiny model from scratch."""
    value: str = ""
    """Value-model checkpoint directory ("" = none, or built from the policy when a learner needs one)."""
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)
    """Architecture of the from-scratch policy (used when policy is "")."""


@dataclass
class EvalConfig:
    """Held-out evaluation (the `eval` block)."""
    num_problems: int = 200
    """Held-out problems per evaluation (generated tasks) or a cap on the split (files); 0 = all."""
    methods: list[str] = field(default_factory=lambda: ["greedy"])
    """Methods to report: greedy, maj@k, best_of_n, beam, mcts."""
    k: int = 8
    """Samples for maj@k / best_of_n; beam width for beam."""
    temperature: float = 1.0
    """Sampling temperature for the sampling methods."""
    max_tokens: int = 256
    """New tokens per response, at most."""


@dataclass
class ExperimentConfig:
    """Everything one run needs; YAML presets in configs/*.yaml override parts of it."""
    seed: int = 0
    """Seed for Python, NumPy and torch RNGs."""
    task: TaskConfig = field(default_factory=TaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    steps: StepFormat = field(default_factory=StepFormat)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
