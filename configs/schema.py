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
from envs.nethack import AgentEnvConfig
from envs.tasks import TaskConfig
from reasoner.generation import GeneratorConfig
from reasoner.steps import StepFormat
from reasoner.templates import PromptConfig
from reasoner.tiny import TinyModelConfig
from rl.learners.agent_bc import AgentBCConfig
from rl.learners.oreo import OREOConfig
from rl.learners.sft import SFTConfig
from rl.learners.spar import RFTConfig, SparDPOConfig
from rl.learners.step_dpo import StepDPOConfig
from rl.learners.trajectory_dpo import TrajectoryDPOConfig
from rl.oni_distill import DistillConfig
from rl.oni_labels import LabellerConfig
from rl.oni_rewards import MessageModelConfig, ONIRewardConfig
from search.agent import AgentConfig
from search.evaluators import SelfEvalConfig
from search.mcts import MCTSConfig
from search.pairs import PairConfig
from search.refine import RefineConfig
from search.spar_data import SparDataConfig
from search.trajectories import TrajectoryConfig
from search.value_guided import BeamConfig, BestOfNConfig

__all__ = ["ModelConfig", "SearchValue", "EvalConfig", "RolloutValue", "PolicyLearner", "Recipe", "SparConfig",
           "AgentLearnerKind", "IterateConfig", "AgentPPOConfig", "ONIJobConfig", "WorkerGroupConfig",
           "WorkersConfig",
           "RayConfig", "ExperimentConfig"]


@dataclass
class ModelConfig:
    """Which policy to start from (the `model` block)."""
    policy: str = ""
    """HF checkpoint directory (or hub name where a hub is reachable); "" = train the tiny model from scratch."""
    value: str = ""
    """Value-model checkpoint directory to start from ("" = built from the policy when first trained)."""
    refiner: str = ""
    """SPaR refiner checkpoint ("" = the starting policy plays both roles, as SPaR's SFT model does)."""
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)
    """Architecture of the from-scratch policy (used when policy is "")."""


class SearchValue(str, enum.Enum):
    """Which value the test-time value methods (best_of_n, beam, mcts) rank with."""
    LEARNED = "learned"
    """The learned critic (OREO value); value methods wait until one exists."""
    LIKELIHOOD = "likelihood"
    """The policy's own per-token geometric-mean probability (search.evaluators.LikelihoodValue)."""


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
    value: SearchValue = SearchValue.LEARNED
    """Value of the value methods: learned (the critic) or likelihood (the policy's own, no training)."""


class RolloutValue(str, enum.Enum):
    """How MCTS rollouts value non-terminal nodes (terminals always get the grader's R)."""
    OUTCOME = "outcome"
    """0 at inner nodes: only the outcome reward at terminals drives the search."""
    LEARNED = "learned"
    """The latest learned value (OREO critic); outcome only until a value exists."""
    SELF_EVAL = "self_eval"
    """MCTS-DPO's self-evaluation C(s) by the policy itself (the `self_eval` block)."""
    MIXTURE = "mixture"
    """self_eval_weight * self-evaluation + (1 - self_eval_weight) * learned value (self-eval alone
    until a value exists)."""


class PolicyLearner(str, enum.Enum):
    """Which learner updates the policy each iteration."""
    STEP_DPO = "step_dpo"
    OREO = "oreo"
    NONE = "none"


class Recipe(str, enum.Enum):
    """What one iteration collects and learns."""
    MCTS = "mcts"
    """LLM reasoning: MCTS collection -> step-DPO / OREO -> evaluation."""
    SPAR = "spar"
    """SPaR actor/refiner self-play (launch/spar_job.py)."""
    ONI = "oni"
    """A NetHack/MiniHack agent trained with RLlib PPO + ONI intrinsic rewards (launch/oni_job.py)."""


@dataclass
class SparConfig:
    """SPaR self-play (the `spar` block; algorithms.md 4.2). Refinement tree: `refine`; data caps: `spar_data`."""
    actor_samples: int = 5
    """Responses sampled per prompt by the actor."""
    actor_temperature: float = 0.9
    """Actor sampling temperature."""
    actor_top_p: float = 0.9
    """Actor nucleus mass."""
    actor_max_tokens: int = 2048
    """New tokens per actor response."""
    sft_prompts: int = 2000
    """Embedded task: train prompts of the SFT mixture (actor references + bootstrap judgments/refinements)."""
    oracle_judge: bool = False
    """Judge with the IFEval checkers instead of the refiner (an upper bound, reported separately; not SPaR)."""
    train_refiner: bool = True
    """Train the refiner by RFT each iteration (False: the SFT refiner judges and refines throughout)."""
    refine_pairs: bool = True
    """Pairs from refinement trees (SPaR); False = self-rewarding baseline: best vs worst judged sample."""

    def __post_init__(self) -> None:
        if self.actor_samples < 1 or self.sft_prompts < 1:
            raise ValueError("spar.actor_samples and spar.sft_prompts must be >= 1")


class AgentLearnerKind(str, enum.Enum):
    """Which learner updates an agent policy each iteration (ALFWorld job; OREO's table O2)."""
    OREO = "oreo"
    RFT = "rft"
    DPO = "dpo"


@dataclass
class IterateConfig:
    """The collect -> learn -> evaluate loop of `launch/iterate.py` (the `iterate` block)."""
    recipe: Recipe = Recipe.MCTS
    """mcts (MCTS pairs/trajectories -> step-DPO/OREO) spar (actor/refiner self-play, algorithms.md 4) or oni
    (RLlib agent with LLM-labelled intrinsic rewards; the `oni` block)."""
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
    rollout_value: RolloutValue = RolloutValue.LEARNED
    """Value of non-terminal MCTS nodes in rollouts: outcome, learned, self_eval or mixture."""
    self_eval_weight: float = 0.5
    """Weight of the self-evaluation in the mixture rollout value."""
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
class AgentPPOConfig:
    """RLlib PPO for the NetHack agent (the `oni.ppo` block). ONI used APPO with V-trace (clip 0.1,
    entropy 0.003, lr 1e-4, batch 1024 x 32 steps on a GPU); these defaults suit a small CPU run."""
    lr: float = 3e-4
    """Adam learning rate."""
    gamma: float = 0.99
    """Discount."""
    lambda_: float = 0.95
    """GAE lambda."""
    clip: float = 0.2
    """PPO ratio clip."""
    vf_clip: float = 100.0
    """Value-loss clip (mixed rewards reach c_ext x 10 per step)."""
    vf_coef: float = 0.5
    """Value-loss weight."""
    entropy_coef: float = 0.01
    """Entropy bonus weight."""
    grad_clip: float = 4.0
    """Gradient-norm clip (ONI: 4)."""
    train_batch: int = 2048
    """Env steps per training iteration (per learner)."""
    minibatch: int = 256
    """SGD minibatch size."""
    epochs: int = 4
    """SGD passes over each train batch."""
    hidden: int = 256
    """Width of the agent network's shared layer."""
    num_env_runners: int = 0
    """Remote env-runner actors (0 = sample in the driver process)."""
    envs_per_runner: int = 8
    """Vectorised envs per env runner."""
    episodes_for_metrics: int = 100
    """Episodes averaged in the reported episode return (ONI: 100)."""

    def __post_init__(self) -> None:
        if self.train_batch < 1 or self.minibatch < 1 or self.epochs < 1 or self.envs_per_runner < 1:
            raise ValueError("oni.ppo: train_batch, minibatch, epochs and envs_per_runner must be >= 1")


@dataclass
class ONIJobConfig:
    """ONI: an RLlib PPO agent on NetHack/MiniHack whose rewards mix in LLM message labels (the `oni` block)."""
    env: AgentEnvConfig = field(default_factory=AgentEnvConfig)
    reward: ONIRewardConfig = field(default_factory=ONIRewardConfig)
    labeller: LabellerConfig = field(default_factory=lambda: LabellerConfig(knowledge=False, max_tokens=24,
                                                                            temperature=0.0))
    labeller_generator: GeneratorConfig = field(default_factory=lambda: GeneratorConfig(device="cpu",
                                                                                        max_batch_size=64))
    """Backend of the labeller: hf (the tiny LM on CPU), vllm (a real model on a GPU), openai (an endpoint)."""
    distill: DistillConfig = field(default_factory=DistillConfig)
    classifier: MessageModelConfig = field(default_factory=MessageModelConfig)
    ppo: AgentPPOConfig = field(default_factory=AgentPPOConfig)
    iterations: int = 20
    """Job iterations; each runs `train_calls_per_iteration` PPO iterations, then checkpoints and commits."""
    train_calls_per_iteration: int = 5
    """PPO training iterations (train_batch env steps each) per committed job iteration."""
    labeller_cpus: float = 1.0
    """Logical CPUs of the labeller actor."""

    def __post_init__(self) -> None:
        if self.iterations < 1 or self.train_calls_per_iteration < 1:
            raise ValueError("oni.iterations and oni.train_calls_per_iteration must be >= 1")


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
    refine: RefineConfig = field(default_factory=RefineConfig)
    spar: SparConfig = field(default_factory=SparConfig)
    spar_data: SparDataConfig = field(default_factory=SparDataConfig)
    spar_dpo: SparDPOConfig = field(default_factory=lambda: SparDPOConfig(lr=2e-7, warmup_ratio=0.1, batch_size=2,
                                                                        grad_accum=2, max_len=2048))
    rft: RFTConfig = field(default_factory=RFTConfig)
    trajectories: TrajectoryConfig = field(default_factory=TrajectoryConfig)
    step_dpo: StepDPOConfig = field(default_factory=StepDPOConfig)
    oreo: OREOConfig = field(default_factory=OREOConfig)
    best_of_n: BestOfNConfig = field(default_factory=BestOfNConfig)
    beam: BeamConfig = field(default_factory=BeamConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    iterate: IterateConfig = field(default_factory=IterateConfig)
    workers: WorkersConfig = field(default_factory=WorkersConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    self_eval: SelfEvalConfig = field(default_factory=SelfEvalConfig)
    """The policy's self-evaluation prompt (rollout_value self_eval or mixture)."""
    oni: ONIJobConfig = field(default_factory=ONIJobConfig)
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
