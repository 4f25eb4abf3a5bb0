"""Tasks and environments: synthetic arithmetic (the embedded default), GSM8K, MATH, MATH-500,
ALFWorld, NetHack/MiniHack, toy problems for tests, and the one answer grader.

Import-light: heavy environment packages are imported only by their own modules.
"""
from envs.base import Problem, TaskError

__all__ = ["Problem", "TaskError"]
