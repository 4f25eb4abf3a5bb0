"""ALFWorld (text mode): household tasks in TextWorld, one game per `AlfworldEnv`.

Wraps ALFWorld's own text environment: TextWorld's `PddlEnv` on a game's `game.tw-pddl` under
ALFWorld's `AlfredDemangler` (object names such as "apple 1") and `AlfredInfos` wrappers, which
is what `textworld.start` builds for the stack `alfworld.agents.environment.AlfredTWEnv.init_env`
registers (Shridhar et al., ICLR 2021). Games are read from a directory (entry points in `launch/`
default it to `$ALFWORLD_DATA`; this module reads no environment) laid out as ALFWorld expects;
nothing is downloaded:

    <data_dir>/json_2.1.1/<split>/<task_type>-<Obj>-<MRecep>-<Recep>-<scene>/<trial>/
        game.tw-pddl      # PDDL domain + problem + grammar (+ a stored walkthrough)
        traj_data.json    # task_type and pddl_params (read by the hand-coded expert)

Episode protocol (ReAct, Yao et al. 2023; OREO, Wang et al. 2024, algorithms.md section 2.9):
- The first observation is the room description and the goal ("Your task is to: ..."), with
  TextWorld's "-= Welcome to TextWorld, ALFRED! =-" banner removed, as ReAct does.
- Every turn counts toward the 40-step budget. A command that is not admissible is answered
  "Nothing happens." by the game itself and is counted as invalid.
- Success (`won`) is the game's own goal check; reward is 1 on the winning step, else 0.

Experts (for offline data and to prove the evaluation harness):
- HANDCODED: ALFWorld's hand-coded TextWorld expert (`HandCodedTWAgent`), driven exactly as
  ALFWorld's `AlfredExpert` wrapper drives it: the first action is "look", then after every
  step the expert observes the new state and proposes the next command ("look" when its
  proposal is not admissible or it gives up). Two adaptations, both documented:
  (1) the expert's few random tie-breaks draw from a per-episode `random.Random(seed)` instead
  of the global RNG, so expert runs are reproducible; (2) `expert_put_alias`: alfworld 0.4.2's
  expert proposes "move X to Y" (the current game grammar) but its state tracker still looks
  for "put" to notice that it has put an object down, so we tell it "put X in/on Y" after a
  successful move. Without (2) it keeps believing it holds the first object in pick-two tasks.
- WALKTHROUGH: the command list stored in each game file (solves the game; 3-9 commands).

Memory: every TextWorld PDDL game loads its own copy of the fast-downward planner library
(about 3 MB resident each) and never unloads it, and unloading it (`close_lib`) crashes the
process at exit. So closed games hand their library copy back to a free list and new games take
one from there (a library copy is reloaded with the new problem on every reset anyway); a long
evaluation holds at most as many copies as it has games open at once.

Translation cache: TextWorld's `PddlState` translates the game's PDDL to the planner's SAS format
twice (plain and optimised) every time it is built: once when a game is loaded and again on every
reset, about 1.3 s of pure Python per build, most of a short episode's cost. The translation is a
pure function of (domain, problem, optimise) and TextWorld only reads its result, so
`fast_downward.pddl2sas` is memoised per process for the last `_TRANSLATIONS_KEPT` inputs
(`_install_translation_cache`): a game's load and first reset share one translation, and replaying
a game (several rollouts of one game) translates nothing.

Threads: TextWorld parses its grammar with tatsu, which is not thread-safe (games built or
stepped on two threads at once fail with parse errors), so every TextWorld call in a process
holds one lock. ALFWorld steps are pure Python and GIL-bound anyway: for parallel games use
processes (`launch.env_actors.RayEnvPool`).
"""
from __future__ import annotations

import enum
import json
import os
import random
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from envs.base import TaskError
from envs.interactive import Env, EnvError, StepResult

__all__ = ["TASK_TYPES", "Split", "ExpertKind", "AlfworldConfig", "AlfworldGame", "AlfworldEnv",
           "find_games", "resolve_data_dir", "goal_of", "strip_banner", "ReActFormat",
           "parse_react_action", "REACT_INSTRUCTION", "REACT_EXAMPLE"]

TASK_TYPES: tuple[str, ...] = (  # ALFWorld's six types, in its own order (alfred_tw_env.TASK_TYPES)
    "pick_and_place_simple", "look_at_obj_in_light", "pick_clean_then_place_in_recep",
    "pick_heat_then_place_in_recep", "pick_cool_then_place_in_recep", "pick_two_obj_and_place",
)
_BANNER = re.compile(r"^-= Welcome to TextWorld, ALFRED! =-\s*")
_GOAL = re.compile(r"Your task is to:\s*(.+?)\s*$", re.S)
_MOVE = re.compile(r"^move (.+) to (.+)$")


class Split(str, enum.Enum):
    """ALFWorld splits: 3,553 train, 140 valid_seen (in distribution), 134 valid_unseen (out)."""
    TRAIN = "train"
    VALID_SEEN = "valid_seen"
    VALID_UNSEEN = "valid_unseen"


class ExpertKind(str, enum.Enum):
    """Which expert `AlfworldEnv.expert_action` consults."""
    NONE = "none"
    HANDCODED = "handcoded"
    WALKTHROUGH = "walkthrough"


@dataclass
class AlfworldConfig:
    """ALFWorld episodes (the `alfworld` block of a recipe)."""
    data_dir: str = ""
    """Root holding json_2.1.1/<split>/... ("" = unset; launch/ entry points fill in $ALFWORLD_DATA)."""
    max_steps: int = 40
    """Agent turns per episode, invalid ones included (40 in ReAct and OREO)."""
    expert: ExpertKind = ExpertKind.NONE
    """Expert tracked during the episode: none, handcoded (ALFWorld's), walkthrough (stored plan)."""
    expert_max_steps: int = 200
    """The hand-coded expert gives up after this many of its own steps (ALFWorld uses 200)."""
    expert_put_alias: bool = True
    """Tell the hand-coded expert "put X in/on Y" after "move X to Y" (see the module docstring)."""

    def __post_init__(self) -> None:
        if self.max_steps < 1:
            raise ValueError("alfworld.max_steps must be >= 1")
        self.expert = ExpertKind(self.expert)


@dataclass(frozen=True, slots=True)
class AlfworldGame:
    """One playable game: where it is and what kind of task it is."""
    game_file: str        # absolute path of game.tw-pddl (traj_data.json sits next to it)
    split: str
    task_type: str        # one of TASK_TYPES
    name: str             # "<task dir>/<trial>", unique within the split

    @property
    def id(self) -> str:
        return f"alfworld/{self.split}/{self.name}"


def resolve_data_dir(data_dir: str | os.PathLike) -> Path:
    """`data_dir` as a Path; clear TaskError when it is unset or not an ALFWorld data directory."""
    path = str(data_dir)
    if not path or "$" in path:  # environment variables are expanded in launch/, never here
        raise TaskError(f"ALFWorld data directory {path!r} is not set: export ALFWORLD_DATA=<dir> for the "
                        "entry points (a copy lives in shared/data/alfworld) or pass data_dir explicitly")
    p = Path(path)
    if not (p / "json_2.1.1").is_dir():
        raise TaskError(f"{p} is not an ALFWorld data directory (no json_2.1.1/ inside)")
    return p


def find_games(data_dir: str | os.PathLike, split: Split | str, *,
               task_types: tuple[str, ...] = TASK_TYPES, limit: int | None = None) -> list[AlfworldGame]:
    """The playable games of a split, sorted by name.

    Applies the filters of ALFWorld's `AlfredTWEnv.collect_game_files`: a folder needs
    traj_data.json, its task_type must be requested, "movable"/"Sliced" folders are skipped, and
    game.tw-pddl must exist with `solvable: true`. ALFWorld walks the tree in file-system order;
    we sort, so runs are reproducible. The train split as shipped here has no traj_data.json
    (`envs.alfworld_games`): there the task type is read from the folder name
    (`<task_type>-<Obj>-<MRecep>-<Recep>-<scene>`, which traj_data.json agrees with on every
    evaluation game), so train games can be played with the walkthrough expert but not with
    the hand-coded one.

    Raises:
        TaskError: the directory or split is missing, or no game passes the filters.
    """
    split = Split(split)
    root = resolve_data_dir(data_dir) / "json_2.1.1" / split.value
    if not root.is_dir():
        raise TaskError(f"ALFWorld split {split.value!r} not found at {root}")
    games = []
    for game_file in sorted(root.glob("*/*/game.tw-pddl")):
        folder = game_file.parent
        if "movable" in str(folder) or "Sliced" in str(folder):
            continue
        traj = folder / "traj_data.json"
        if traj.exists():
            task_type = json.loads(traj.read_text())["task_type"]
        elif split == Split.TRAIN:
            task_type = folder.parent.name.split("-", 1)[0]
        else:
            continue
        if task_type not in task_types:
            continue
        if not json.loads(game_file.read_text()).get("solvable", False):
            continue
        games.append(AlfworldGame(str(game_file.resolve()), split.value, task_type,
                                  f"{folder.parent.name}/{folder.name}"))
        if limit is not None and len(games) >= limit:
            break
    if not games:
        raise TaskError(f"no playable ALFWorld games under {root}")
    return games


def strip_banner(text: str) -> str:
    """Remove TextWorld's welcome banner from the first observation."""
    return _BANNER.sub("", text, count=1)


def goal_of(first_text: str) -> str:
    """The goal sentence of a first observation, e.g. "put some soapbottle on toilet."."""
    m = _GOAL.search(first_text)
    if m is None:
        raise EnvError(f"no 'Your task is to:' in the first observation: {first_text[:200]!r}")
    return m.group(1)


class _ExpertRandom:
    """Stands in for the `random` module inside ALFWorld's expert (it only calls `choice`).

    `rng` is pointed at the env's episode RNG before each expert call, under the TextWorld lock.
    """

    def __init__(self) -> None:
        self.rng = random.Random(0)

    def choice(self, seq):
        return self.rng.choice(seq)


_EXPERT_RANDOM = _ExpertRandom()
_TEXTWORLD_LOCK = threading.Lock()   # tatsu (TextWorld's grammar parser) is not thread-safe
_FREE_PLANNER_LIBS: list = []        # fast-downward library copies of closed games (module docstring)
_TRANSLATIONS_KEPT = 16               # (domain, problem, optimise) -> (task, sas), most recent last
_TRANSLATIONS: "OrderedDict[tuple, tuple]" = OrderedDict()


def _install_translation_cache() -> None:
    """Memoise `fast_downward.pddl2sas` (see "Translation cache" in the module docstring)."""
    import fast_downward
    if getattr(fast_downward.pddl2sas, "_memoised", False):
        return
    translate = fast_downward.pddl2sas

    def pddl2sas(domain: str, problem: str, verbose: bool = False, optimize: bool = False):
        key = (domain, problem, bool(optimize))
        if key in _TRANSLATIONS:
            _TRANSLATIONS.move_to_end(key)
            return _TRANSLATIONS[key]
        out = _TRANSLATIONS[key] = translate(domain, problem, verbose=verbose, optimize=optimize)
        while len(_TRANSLATIONS) > _TRANSLATIONS_KEPT:
            _TRANSLATIONS.popitem(last=False)
        return out

    pddl2sas._memoised = True
    fast_downward.pddl2sas = pddl2sas


def _start_textworld(game_file: str, infos):
    """`textworld.start(game_file, infos, [AlfredDemangler, AlfredInfos])` with a reused planner library.

    Builds the same object `textworld.start` builds for a .tw-pddl game (TextWorld's `PddlEnv`
    under ALFWorld's wrappers), except that the fast-downward library copy comes from the free
    list when one is there. Call with `_TEXTWORLD_LOCK` held.
    """
    import fast_downward
    import textworld
    from alfworld.agents.environment.alfred_tw_env import AlfredDemangler, AlfredInfos
    from textworld.envs.pddl import PddlEnv
    _install_translation_cache()
    pddl = PddlEnv.__new__(PddlEnv)
    textworld.core.Environment.__init__(pddl, infos)          # PddlEnv.__init__ minus load_lib()
    pddl.downward_lib = _FREE_PLANNER_LIBS.pop() if _FREE_PLANNER_LIBS else fast_downward.load_lib()
    env = AlfredInfos(AlfredDemangler(pddl, shuffle=False))   # the wrappers AlfredTWEnv registers
    env.load(game_file)
    return env


def _install_expert_random() -> None:
    import alfworld.agents.expert.handcoded_expert as hce
    hce.random = _EXPERT_RANDOM


class AlfworldEnv(Env):
    """One ALFWorld game as an `Env` (see the module docstring for the episode protocol).

    `reset(seed)` replays the same game (ALFWorld games are deterministic); the seed only drives
    the hand-coded expert's tie-breaks.
    """

    def __init__(self, game: AlfworldGame, cfg: AlfworldConfig | None = None):
        self.cfg = cfg or AlfworldConfig()
        super().__init__(self.cfg.max_steps)
        self.game = game
        self._tw = None                     # textworld env, built on first reset
        self._state = None                  # latest textworld GameState
        self._goal = ""
        self._walkthrough: tuple[str, ...] = ()
        self._expert = None
        self._expert_rng = random.Random(0)
        self._expert_next = "look"
        self._walk_pos = 0

    @property
    def env_id(self) -> str:
        return self.game.id

    @property
    def task_type(self) -> str:
        return self.game.task_type

    @property
    def goal(self) -> str:
        """The task sentence of the current episode ("" before reset)."""
        return self._goal

    @property
    def walkthrough(self) -> tuple[str, ...]:
        """The game's stored solution (known after the first reset)."""
        return self._walkthrough

    def _build(self) -> None:
        import textworld
        infos = textworld.EnvInfos(won=True, admissible_commands=True,
                                   facts=self.cfg.expert == ExpertKind.HANDCODED,
                                   extras=["gamefile", "walkthrough"])
        self._tw = _start_textworld(self.game.game_file, infos)

    def _reset(self, seed: int | None) -> StepResult:
        with _TEXTWORLD_LOCK:
            if self._tw is None:
                self._build()
            self._state = self._tw.reset()
        text = strip_banner(self._state.feedback)
        self._goal = goal_of(text)
        self._walkthrough = tuple(self._state.get("extra.walkthrough") or ())
        self._walk_pos = 0
        if self.cfg.expert == ExpertKind.HANDCODED:
            from alfworld.agents.expert import HandCodedTWAgent
            _install_expert_random()
            self._expert_rng = random.Random(0 if seed is None else seed)
            self._expert = HandCodedTWAgent(max_steps=self.cfg.expert_max_steps)
            self._expert.reset(self.game.game_file)
            self._expert.observe(self._state.feedback)   # the raw text: it parses "Welcome"
            self._expert_next = "look"                   # as AlfredExpert: look first
        return StepResult(text=text, actions=tuple(self._state["admissible_commands"]))

    def _step(self, action: str) -> StepResult:
        command = " ".join(action.split()).lower()
        invalid = command not in self._state["admissible_commands"]
        with _TEXTWORLD_LOCK:
            self._state, score, done = self._tw.step(command)
            if self.cfg.expert == ExpertKind.HANDCODED and not done:
                self._advance_expert(command)
        won = bool(self._state["won"])
        if self._walk_pos < len(self._walkthrough) and command == self._walkthrough[self._walk_pos]:
            self._walk_pos += 1
        return StepResult(text=self._state.feedback, actions=tuple(self._state["admissible_commands"]),
                          reward=float(score), done=bool(done), won=won, invalid=invalid)

    def _advance_expert(self, command: str) -> None:
        """Let the hand-coded expert observe the step and propose the next command (AlfredExpert)."""
        from alfworld.agents.expert import HandCodedAgentFailed, HandCodedAgentTimeout
        last = command
        m = _MOVE.match(command)
        if self.cfg.expert_put_alias and m and "Nothing happens" not in self._state.feedback:
            last = f"put {m.group(1)} in/on {m.group(2)}"
        _EXPERT_RANDOM.rng = self._expert_rng
        try:
            proposal = self._expert.act(self._state, 0, self._state["won"], last)
        except (HandCodedAgentTimeout, HandCodedAgentFailed):
            proposal = "look"
        self._expert_next = proposal if proposal in self._state["admissible_commands"] else "look"

    def expert_action(self) -> str:
        """The next command of the configured expert ("look" once a walkthrough is used up)."""
        if self._state is None:
            raise EnvError(f"{self.env_id}: expert_action() before reset()")
        if self.cfg.expert == ExpertKind.HANDCODED:
            return self._expert_next
        if self.cfg.expert == ExpertKind.WALKTHROUGH:
            wt = self._walkthrough
            return wt[self._walk_pos] if self._walk_pos < len(wt) else "look"
        raise EnvError(f"{self.env_id}: no expert configured (AlfworldConfig.expert = none)")

    def _stats(self) -> dict:
        return {"goal": self._goal}

    def close(self) -> None:
        if self._tw is not None:
            with _TEXTWORLD_LOCK:
                self._tw.close()
                _FREE_PLANNER_LIBS.append(self._tw.unwrapped.downward_lib)
        self._tw = None
        self._state = None
        self._expert = None
        super().close()


# ---------------------------------------------------------------------------------- ReAct turns
REACT_INSTRUCTION = (
    "You are a helpful household agent. You are placed in a room and must complete the task "
    "you are given by typing text commands.\n"
    "Each turn, you may first reason in one line that starts with \"Thought:\", and then you "
    "must give exactly one command in one line that starts with \"Action:\". The room answers "
    "in a line that starts with \"Observation:\".\n"
    "Commands: go to <receptacle>, open <receptacle>, close <receptacle>, "
    "take <object> from <receptacle>, move <object> to <receptacle>, examine <something>, "
    "use <object>, heat <object> with <receptacle>, cool <object> with <receptacle>, "
    "clean <object> with <receptacle>, inventory, look.\n"
    "Name objects and receptacles with their numbers, exactly as the room does. A command that "
    "cannot be done gets \"Nothing happens.\"."
)

# A worked example written for this project (not taken from the ALFWorld games or the papers),
# in the text style of the ALFWorld games.
REACT_EXAMPLE = (
    "You are in the middle of a room. Looking quickly around you, you see a cabinet 2, a cabinet 1, "
    "a countertop 1, a drawer 2, a drawer 1, a fridge 1, a sinkbasin 1, and a stoveburner 1.\n\n"
    "Your task is to: put a clean knife in drawer.\n"
    "Thought: I need a knife first. Knives are often on a countertop, so I check there.\n"
    "Action: go to countertop 1\n"
    "Observation: You arrive at countertop 1. On the countertop 1, you see a bread 1, a knife 2, and a plate 1.\n"
    "Action: take knife 2 from countertop 1\n"
    "Observation: You pick up the knife 2 from the countertop 1.\n"
    "Thought: Now I clean the knife in the sink.\n"
    "Action: go to sinkbasin 1\n"
    "Observation: You arrive at sinkbasin 1. On the sinkbasin 1, you see nothing.\n"
    "Action: clean knife 2 with sinkbasin 1\n"
    "Observation: You clean the knife 2 using the sinkbasin 1.\n"
    "Thought: The knife is clean. A drawer may be closed, so I go there and open it.\n"
    "Action: go to drawer 1\n"
    "Observation: You arrive at drawer 1. The drawer 1 is closed.\n"
    "Action: open drawer 1\n"
    "Observation: You open the drawer 1. The drawer 1 is open. In it, you see a spoon 1.\n"
    "Action: move knife 2 to drawer 1\n"
    "Observation: You move the knife 2 to the drawer 1.\n"
)

_ACTION_LINE = re.compile(r"^\s*Action\s*:\s*(.*?)\s*$", re.I | re.M)
_PUT = re.compile(r"^put (.+?) (?:in/on|into|onto|in|on) (.+)$")


def parse_react_action(text: str) -> str | None:
    """The command of the first "Action:" line of a turn, normalised; None when there is none.

    Normalisation: lower case, single spaces, surrounding quotes and a final period removed, and
    ReAct's older "put X in/on Y" rewritten to the games' "move X to Y".
    """
    m = _ACTION_LINE.search(text)
    if m is None:
        return None
    action = " ".join(m.group(1).lower().split()).strip("\"'`").rstrip(".").strip()
    if not action:
        return None
    put = _PUT.match(action)
    return f"move {put.group(1)} to {put.group(2)}" if put else action


class ReActFormat:
    """ReAct-style turns for ALFWorld: "Thought: ...\\nAction: ...\\n" then "Observation: ...\\n".

    The prompt is the instruction, the one-shot example, and the episode's first observation;
    the model's context is the whole episode so far (ReAct and OREO keep the full history).
    """

    stop: tuple[str, ...] = ("Observation:",)

    def __init__(self, instruction: str = REACT_INSTRUCTION, example: str = REACT_EXAMPLE):
        self.instruction = instruction
        self.example = example

    def initial_prompt(self, first: StepResult) -> str:
        shots = f"Here is an example.\n{self.example}\n" if self.example else ""
        return f"{self.instruction}\n\n{shots}Here is your task.\n{first.text.strip()}\n"

    def context(self, prompt: str, steps, observations) -> str:
        return prompt + "".join(s + o for s, o in zip(steps, observations))

    def split_turn(self, text: str) -> tuple[str, str | None]:
        """Keep the turn up to and including its first Action line (drop anything after it)."""
        m = _ACTION_LINE.search(text)
        kept = text[:m.end()] if m else text
        lines = [ln.strip() for ln in kept.strip().splitlines() if ln.strip()]
        return "\n".join(lines) + "\n", parse_react_action(kept)

    def observation(self, result: StepResult) -> str:
        return f"Observation: {result.text.strip()}\n"

    def turn_for_action(self, action: str) -> str:
        return f"Action: {action}\n"
