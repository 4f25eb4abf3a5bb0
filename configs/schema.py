"""The root experiment config, composed from the component configs that live next to their code.

Only `launch/` turns YAML + CLI into these objects (`launch.config.load_config`); every component
receives its own block. `configs/_generated/defaults.yaml` is the full default dump, regenerated
by a test that fails on any unreviewed drift (`python -m launch.config --dump-defaults` rewrites it).
The job-level blocks (`iterate`, `workers`, `ray`) are defined here because `launch/` owns them and
nothing may import `launch`.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

from envs.alfworld import AlfworldConfig
from envs.alfworld_games import AlfworldTaskConfig
from envs.tasks import TaskConfig
from reasoner.generation import GeneratorConfig
from reasoner.steps import StepFormat
from reasoner.templates import PromptConfig
from reasoner.tiny import TinyModelConfig
from rl.learners.agent_bc import AgentBCConfig
from rl.learners.oreo import OREOConfig
from rl.learners.sft import SFTConfig
from rl.learners.trajectory_dpo import TrajectoryDPOConfig
from rl.learners.step_dpo import StepDPOConfig
from search.agent import AgentConfig
from search.mcts import MCTSConfig
from search.pairs import PairConfig
from search.trajectories import TrajectoryConfig
from search.value_guided import BeamConfig, BestOfNConfig

__all__ = ["ModelConfig", "EvalConfig", "PolicyLearner", "AgentLearnerKind", "IterateConfig", "WorkerGroupConfig", "WorkersConfig",
           "RayConfig", "ExperimentConfig"]


@dataclass
class ModelConfig:
    """Which policy to start from (the `model` block)."""
    policy: str = ""
    """HF checkpoint directory (or hub name where a hub is reachable); "" = train the tiny model from scratch."""
    value: str = ""
    """Value-model checkpoint directory to start from ("" = built from the policy when first trained)."""
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)
    """Architecture of the from-scratch policy (used when policy is "")."""


@dataclass
class EvalConfig:
    """Held-out evaluation (the `eval` block)."""
    task: str = ""
    """Held-out task ("" = the test split of task.name; e.g. math500 when training on math)."""
    num_problems: int = 200
    """Held-out problems per evaluation (generated tasks) or a cap on the split (files); 0 = all."""
    methods: list[str] = field(default_factory=lambda: ["greedy"])
    """Methods to report: greedy, maj@k, best_of_n@n, beam@b, mcts@sims (value methods need a value model)."""
    temperature: float = 1.0
    """Sampling temperature for the sampling methods."""
    max_tokens: int = 256
    """New tokens per response, at most."""


class PolicyLearner(str, enum.Enum):
    """Which learner updates the policy each iteration."""
    STEP_DPO = "step_dpo"
    OREO = "oreo"
    NONE = "none"


class AgentLearnerKind(str, enum.Enum):
    """Which learner updates an agent policy each iteration (ALFWorld job; OREO's table O2)."""
    OREO = "oreo"
    RFT = "rft"
    DPO = "dpo"


@dataclass
class IterateConfig:
    """The collect -> learn -> evaluate loop of `launch/iterate.py` (the `iterate` block)."""
    iterations: int = 3
    """Iterations after iteration 0 (the starting policy, evaluated only)."""
    problems_per_iteration: int = 64
    """Training problems searched per iteration (fresh ones each iteration)."""
    chunk_size: int = 16
    """Problems per rollout task (the unit that is retried if an actor dies)."""
    policy_learner: PolicyLearner = PolicyLearner.STEP_DPO
    """step_dpo (MCTS pairs), oreo (MCTS trajectories), or none."""
    train_value: bool = True
    """Fit the OREO value on MCTS trajectories each iteration (with the step_dpo policy learner: a
    value-only fit, V(s_t) regressed on R; see rl.learners.oreo.OREOConfig.train_policy)."""
    value_in_rollouts: bool = True
    """Use the latest learned value for non-terminal MCTS nodes (terminals use the grader)."""
    filter_correct: bool = False
    """Keep a problem's step pairs only if its committed answer is correct (MCTS-DPO --filter)."""
    run_dir: str = ""
    """Run directory ("" = runs/<config file stem>); rerunning with the same one resumes."""
    agent_learner: AgentLearnerKind = AgentLearnerKind.OREO
    """Agent tasks (alfworld): oreo (policy + value), rft (rejection sampling) or dpo (trajectory pairs)."""
    rft_lr: float = 2e-5
    """Agent tasks: learning rate of rejection-sampling fine-tuning (OREO's ALFWorld RFT: 2e-5)."""


@dataclass
class WorkerGroupConfig:
    """Resources of one actor group."""
    count: int = 1
    """Actors in the group."""
    num_cpus: float = 1.0
    """Logical CPUs per actor."""
    num_gpus: float = 0.0
    """GPUs per actor (fractions share a GPU)."""
    max_restarts: int = 2
    """Ray restarts a dead actor this many times; its in-flight task is retried."""


@dataclass
class WorkersConfig:
    """Actor groups of the job (the `workers` block)."""
    rollout: WorkerGroupConfig = field(default_factory=lambda: WorkerGroupConfig(count=2))
    """Policy workers: MCTS rollouts and evaluation (each holds a generator)."""
    learner: WorkerGroupConfig = field(default_factory=WorkerGroupConfig)
    """The learner (SFT, step-DPO, OREO)."""


@dataclass
class RayConfig:
    """How the job gets a Ray cluster (the `ray` block)."""
    address: str = ""
    """Cluster to join ("" = RAY_ADDRESS, or the job's cluster under `ray job submit`, else start a local one)."""
    num_cpus: int = 0
    """Logical CPUs of a local cluster (0 = max(4, os.cpu_count())): actors are scheduled on these."""
    num_gpus: int = 0
    """GPUs of a local cluster."""
    object_store_mb: int = 512
    """Object store cap of a local cluster, in MiB."""
    torch_threads: int = 1
    """OMP_NUM_THREADS for every worker process."""


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
    mcts: MCTSConfig = field(default_factory=MCTSConfig)
    pairs: PairConfig = field(default_factory=PairConfig)
    trajectories: TrajectoryConfig = field(default_factory=TrajectoryConfig)
    step_dpo: StepDPOConfig = field(default_factory=StepDPOConfig)
    oreo: OREOConfig = field(default_factory=OREOConfig)
    best_of_n: BestOfNConfig = field(default_factory=BestOfNConfig)
    beam: BeamConfig = field(default_factory=BeamConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    iterate: IterateConfig = field(default_factory=IterateConfig)
    workers: WorkersConfig = field(default_factory=WorkersConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    alfworld: AlfworldConfig = field(default_factory=AlfworldConfig)
    """ALFWorld episodes (task.name = alfworld)."""
    alfworld_task: AlfworldTaskConfig = field(default_factory=AlfworldTaskConfig)
    """ALFWorld as a training task: train games, expert data, rollouts."""
    agent: AgentConfig = field(default_factory=AgentConfig)
    """Agent turns in interactive environments."""
    agent_bc: AgentBCConfig = field(default_factory=AgentBCConfig)
    """Behaviour cloning / rejection-sampling fine-tuning on agent trajectories."""
    trajectory_dpo: TrajectoryDPOConfig = field(default_factory=TrajectoryDPOConfig)
    """DPO on (won, lost) agent trajectories of one game (the agent DPO baseline)."""
