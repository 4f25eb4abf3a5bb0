"""Tasks and environments: synthetic arithmetic (the embedded default), GSM8K, MATH, MATH-500,
ALFWorld, NetHack/MiniHack, toy problems for tests, and the one answer grader.

Import-light: heavy environment packages are imported only by their own modules.
"""
from envs.base import Problem, TaskError
from envs.grading import extract_answer, grade, normalize_answer
from envs.interactive import Env, EnvError, EnvGroup, StepResult, TurnFormat

__all__ = ["Problem", "TaskError", "grade", "extract_answer", "normalize_answer",
           "Env", "EnvError", "EnvGroup", "StepResult", "TurnFormat"]
