"""NetHack (NLE) and MiniHack as text environments for LLM agents and for ONI's message labels.

Any gymnasium task that NLE (`NetHackScore-v0`, `NetHackStaircase-v0`, `NetHackOracle-v0`, ...)
or MiniHack (`MiniHack-Room-5x5-v0`, `MiniHack-Corridor-R2-v0`, ...) registers can be played by
name (Küttler et al., NeurIPS 2020; Samvelyan et al., 2021).

What the agent sees (`render_text`): the game message, the dungeon map cropped to the part that
has been drawn, and the two status lines, all taken from the 24x80 `tty_chars` screen. What ONI
labels (algorithms.md section 5): the `message` line, a NUL-padded `uint8[256]` decoded with
`decode_message` (ASCII/latin-1, trailing NULs dropped). Both are in every `StepResult.info`.

Actions are the task's own action set, named in words ("north", "far east", "search", "kick",
"more", ...: `action_names`). An action that is not in the set is a safe no-op: nothing is sent
to NetHack (no game time passes, no reward), the agent sees the same screen with the message
"Invalid action.", and the step is counted (toward `max_steps` and `num_invalid`).

Seeding: `reset(seed)` sets NetHack's core and display RNGs to `seed` with reseeding off
(`NLE.seed(core, disp, reseed=False)`), so a seed and an action sequence replay exactly.
Success (`won`, R in {0, 1}) follows `NetHackConfig.goal`: the task's own success status
(MiniHack goals, NLE Staircase/Oracle), or reaching a score or a dungeon depth; a reached goal
ends the episode. NLE exposes no achievement list; episode statistics report score, depth
(current and deepest), game turns, gold, experience level and NLE's end status.
"""
from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from envs.interactive import Env, EnvError, StepResult

__all__ = ["NetHackGoal", "NetHackConfig", "AgentEnvConfig", "NetHackEnv", "decode_message", "render_text",
           "action_names", "MenuFormat", "MENU_INSTRUCTION"]

_OBS_KEYS = ("message", "blstats", "tty_chars")
_SCREEN = "\nMessage: "   # where a rendered screen starts inside a prompt
_DIRECTIONS = {"N": "north", "E": "east", "S": "south", "W": "west",
               "NE": "northeast", "SE": "southeast", "SW": "southwest", "NW": "northwest"}
# NLE blstats indices (nle.nethack.NLE_BL_*), fixed by NLE's C API.
_BL_SCORE, _BL_DEPTH, _BL_GOLD, _BL_XP, _BL_TIME = 9, 12, 13, 18, 20


class NetHackGoal(str, enum.Enum):
    """What counts as success (R = 1) for an episode."""
    TASK = "task"      # the task's own TASK_SUCCESSFUL status (MiniHack goal, Staircase, Oracle)
    SCORE = "score"    # in-game score >= goal_threshold
    DEPTH = "depth"    # dungeon depth >= goal_threshold


@dataclass
class NetHackConfig:
    """A NetHack/MiniHack task (the `nethack` block of a recipe)."""
    task: str = "NetHackScore-v0"
    """gymnasium id of an NLE or MiniHack task."""
    max_steps: int = 1000
    """Agent steps per episode, invalid ones included (replaces the task's own limit)."""
    goal: NetHackGoal = NetHackGoal.TASK
    """Success criterion: task (the env's success status), score or depth."""
    goal_threshold: int = 0
    """Score or depth needed for success when goal is score or depth."""

    def __post_init__(self) -> None:
        if self.max_steps < 1:
            raise ValueError("nethack.max_steps must be >= 1")
        self.goal = NetHackGoal(self.goal)
        if self.goal != NetHackGoal.TASK and self.goal_threshold < 1:
            raise ValueError("nethack.goal_threshold must be >= 1 for score/depth goals")


@dataclass
class AgentEnvConfig:
    """The env a neural RL agent trains on (`envs.nethack_rl.make_agent_env`; the `oni.env` block)."""
    task: str = "MiniHack-Room-5x5-v0"
    """gymnasium id of an NLE or MiniHack task."""
    crop: int = 9
    """Side of the glyph window centred on the agent (odd)."""
    max_episode_steps: int = 0
    """Episode step limit (0 = the task's own)."""

    def __post_init__(self) -> None:
        if self.crop < 1 or self.crop % 2 == 0:
            raise ValueError("agent_env.crop must be a positive odd number")
        if self.max_episode_steps < 0:
            raise ValueError("agent_env.max_episode_steps must be >= 0")


def decode_message(message: np.ndarray) -> str:
    """NLE's `message` observation (uint8[256], NUL-padded) as text."""
    return bytes(message).split(b"\0", 1)[0].decode("latin-1")


def render_text(tty_chars: np.ndarray, message: str) -> str:
    """A compact text view of a 24x80 tty screen for LLM agents.

    Rows 1-21 (the map) are cropped to the columns and rows that hold anything but spaces; rows
    22-23 are the status lines, with runs of spaces collapsed. Row 0 (the message line) is
    replaced by `message`.
    """
    rows = [bytes(r).decode("latin-1") for r in tty_chars]       # [24] strings of 80 chars
    dungeon = rows[1:-2]
    used = [i for i, r in enumerate(dungeon) if r.strip()]
    if used:
        body = dungeon[used[0]:used[-1] + 1]
        left = min(len(r) - len(r.lstrip()) for r in body if r.strip())
        right = max(len(r.rstrip()) for r in body)
        map_text = "\n".join(r[left:right].rstrip() for r in body)
    else:
        map_text = "(nothing)"
    status = "\n".join(" ".join(r.split()) for r in rows[-2:])
    return f"Message: {message or '(none)'}\nMap:\n{map_text}\nStatus:\n{status}"


def _action_name(action: enum.IntEnum) -> str:
    kind = type(action).__name__
    if kind == "CompassDirection":
        return _DIRECTIONS[action.name]
    if kind == "CompassDirectionLonger":
        return "far " + _DIRECTIONS[action.name]
    return action.name.lower().replace("_", " ")


def action_names(actions: Sequence[enum.IntEnum]) -> tuple[str, ...]:
    """Word names of a task's action set, in action-index order."""
    names = tuple(_action_name(a) for a in actions)
    if len(set(names)) != len(names):
        raise EnvError(f"action names are not unique: {names}")
    return names


class NetHackEnv(Env):
    """An NLE/MiniHack task as an `Env` (see the module docstring for text, actions, seeding)."""

    def __init__(self, cfg: NetHackConfig | None = None, *, episode: int = 0):
        self.cfg = cfg or NetHackConfig()
        super().__init__(self.cfg.max_steps)
        self.episode = episode   # part of env_id only, so many envs of one task stay distinct
        self._gym = None
        self._names: tuple[str, ...] = ()
        self._obs: dict[str, np.ndarray] | None = None
        self._bl: np.ndarray | None = None   # blstats of the last in-game screen (zero after the end)
        self._max_depth = 0
        self._end_status = "running"

    @property
    def env_id(self) -> str:
        return f"nethack/{self.cfg.task}/{self.episode}"

    @property
    def task_type(self) -> str:
        return self.cfg.task

    @property
    def action_set(self) -> tuple[str, ...]:
        """The task's action names (known after the first reset)."""
        return self._names

    def _build(self) -> None:
        import gymnasium as gym
        import nle  # noqa: F401  (registers the NetHack tasks)
        if self.cfg.task.startswith("MiniHack"):
            import minihack  # noqa: F401  (registers the MiniHack tasks)
        spec = gym.spec(self.cfg.task)
        # NLE counts only the actions it receives (never more than ours), so with a limit one
        # above ours it never truncates first; our Env base class does.
        spec = dataclasses.replace(spec, kwargs={**spec.kwargs, "observation_keys": _OBS_KEYS,
                                                 "max_episode_steps": self.cfg.max_steps + 1})
        self._gym = gym.make(spec, disable_env_checker=True)
        self._names = action_names(self._gym.unwrapped.actions)

    def _result(self, obs: dict, reward: float, done: bool, won: bool, invalid: bool,
                message: str | None = None) -> StepResult:
        msg = decode_message(obs["message"]) if message is None else message
        bl = self._bl
        info = {"message": "" if message is not None else msg, "score": int(bl[_BL_SCORE]),
                "depth": int(bl[_BL_DEPTH]), "turn": int(bl[_BL_TIME]), "end_status": self._end_status}
        return StepResult(text=render_text(obs["tty_chars"], msg), actions=self._names,
                          reward=float(reward), done=done, won=won, invalid=invalid, info=info)

    def _reset(self, seed: int | None) -> StepResult:
        if self._gym is None:
            self._build()
        if seed is not None:
            self._gym.unwrapped.seed(core=seed, disp=seed, reseed=False)
        self._obs, _ = self._gym.reset()
        self._bl = self._obs["blstats"].copy()   # NLE reuses its arrays
        self._max_depth = int(self._bl[_BL_DEPTH])
        self._end_status = "running"
        return self._result(self._obs, 0.0, False, False, False)

    def _goal_reached(self, status_name: str) -> bool:
        bl = self._bl
        if self.cfg.goal == NetHackGoal.TASK:
            return status_name == "task_successful"
        if self.cfg.goal == NetHackGoal.SCORE:
            return int(bl[_BL_SCORE]) >= self.cfg.goal_threshold
        return int(bl[_BL_DEPTH]) >= self.cfg.goal_threshold

    def _step(self, action: str) -> StepResult:
        name = " ".join(action.split()).lower()
        if name not in self._names:
            return self._result(self._obs, 0.0, False, False, True, message="Invalid action.")
        self._obs, reward, terminated, truncated, info = self._gym.step(self._names.index(name))
        status = info.get("end_status")
        self._end_status = status.name.lower() if hasattr(status, "name") else "running"
        if self._obs["blstats"].any():   # NLE zeroes blstats once the game is over
            self._bl = self._obs["blstats"].copy()
        self._max_depth = max(self._max_depth, int(self._bl[_BL_DEPTH]))
        won = self._goal_reached(self._end_status)
        return self._result(self._obs, reward, bool(terminated or truncated or won), won, False)

    def _stats(self) -> dict[str, Any]:
        if self._bl is None:
            return {}
        bl = self._bl
        return {"score": int(bl[_BL_SCORE]), "depth": int(bl[_BL_DEPTH]), "max_depth": self._max_depth,
                "turns": int(bl[_BL_TIME]), "gold": int(bl[_BL_GOLD]), "xp_level": int(bl[_BL_XP]),
                "end_status": self._end_status}

    def close(self) -> None:
        if self._gym is not None:
            self._gym.close()
        self._gym = None
        self._obs = self._bl = None
        super().close()


# ---------------------------------------------------------------------------------- action menu
MENU_INSTRUCTION = (
    "You are playing NetHack ({task}). Each turn you see the game message, the map ('@' is you) "
    "and your status. Choose the next action from this list and answer with its name only:\n"
    "{menu}\n"
)


class MenuFormat:
    """Action-menu turns for NetHack: the prompt lists the actions, the model names one.

    The model sees only the current screen each turn (the screen is the state); the recorded
    trajectory still holds every screen, so `prompt + steps + observations` reads as the game.
    The menu comes from the first observation's action set, so one format serves any task.
    """

    stop: tuple[str, ...] = ("\n",)

    def __init__(self, task: str):
        self.task = task

    def initial_prompt(self, first: StepResult) -> str:
        if not first.actions:
            raise EnvError("the menu format needs the action set in the first observation")
        header = MENU_INSTRUCTION.format(task=self.task, menu=", ".join(first.actions))
        return header + self.observation(first)

    def context(self, prompt: str, steps, observations) -> str:
        if not observations:
            return prompt
        header = prompt[:prompt.index(_SCREEN)]   # the instruction never contains a screen
        return header + observations[-1]

    def split_turn(self, text: str) -> tuple[str, str | None]:
        line = text.strip().splitlines()[0].strip() if text.strip() else ""
        action = " ".join(line.lower().strip(".\"'`").split()) or None
        return f" {line}\n", action

    def observation(self, result: StepResult) -> str:
        return f"\n{result.text}\nAction:"

    def turn_for_action(self, action: str) -> str:
        return f" {action}\n"
