"""Fixtures for the search tests; the fakes themselves live in `search_fakes.py`."""
from __future__ import annotations

import pytest

from envs.base import Problem
from search_fakes import chain_problem


@pytest.fixture
def chain_problems() -> list[Problem]:
    """Four arithmetic chains of 1-4 operations (answers 15, 18, 10, 24)."""
    return [chain_problem(0, "chain: 3 +2 *3"), chain_problem(1, "chain: 7 -2 +4 *2"),
            chain_problem(2, "chain: 5 *2"), chain_problem(3, "chain: 9 +1 +1 -3 *2")]
