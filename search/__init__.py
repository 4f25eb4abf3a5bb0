"""Search: batched step-level trees (MCTS-DPO), test-time methods and preference pairs.

Import-light: no torch, ray or transformers. Models come in through `reasoner.generation.Generator`
and `search.evaluators.ValueFn`.
"""
from search.core import TreeCore
from search.evaluators import (LearnedValue, OutcomeValue, PrefixValueModel, SearchState, SelfEvalConfig,
                               SelfEvalValue, TerminalValue, ValueFn)
from search.ledger import Ledger, SearchStats
from search.mcts import MCTSConfig, MCTSResult, StepMCTS
from search.pairs import PairConfig, RejectedChoice, extract_pairs, pairs_from_result
from search.trajectories import TrajectoryConfig, trajectories_from_result
from search.tree import Tree
from search.value_guided import (BeamConfig, BestOfNConfig, BestOfNMode, SearchOutput, beam_search, best_of_n,
                                 mcts_search)

__all__ = [
    "Tree", "TreeCore",
    "SearchState", "ValueFn", "PrefixValueModel", "TerminalValue", "OutcomeValue", "SelfEvalConfig",
    "SelfEvalValue", "LearnedValue",
    "Ledger", "SearchStats",
    "MCTSConfig", "MCTSResult", "StepMCTS",
    "PairConfig", "RejectedChoice", "extract_pairs", "pairs_from_result",
    "TrajectoryConfig", "trajectories_from_result",
    "BestOfNConfig", "BestOfNMode", "BeamConfig", "SearchOutput", "best_of_n", "beam_search", "mcts_search",
]
