"""Step splitting is exact and reversible; the format options behave as documented."""
from hypothesis import given, strategies as st

from reasoner.steps import StepFormat, common_prefix_steps, join_steps, split_steps, step_offsets


def test_lines():
    assert split_steps("3*5=15\n15-2=13\n#### 13") == ["3*5=15\n", "15-2=13\n", "#### 13"]
    assert split_steps("a\n\nb\n") == ["a\n\n", "b\n"]
    assert split_steps("") == []


def test_math_delimiters():
    fmt = StepFormat.math()
    text = "We have $x=2$. So $y=4$.$ Then\nthe answer is 4"
    assert split_steps(text, fmt) == ["We have $x=2$. ", "So $y=4$.$ ", "Then\n", "the answer is 4"]


def test_short_pieces_are_glued():
    fmt = StepFormat(delimiters=["\n"], min_step_chars=4)
    assert split_steps("ab\ncdef\ng\n", fmt) == ["ab\ncdef\n", "g\n"]


@given(st.text(alphabet="ab .\n$", max_size=60))
def test_join_inverts_split(text):
    for fmt in (StepFormat.lines(), StepFormat.math(), StepFormat(delimiters=["\n"], min_step_chars=3)):
        steps = split_steps(text, fmt)
        assert join_steps(steps) == text
        spans = step_offsets(steps)
        assert all(text[s:e] == step for (s, e), step in zip(spans, steps))


def test_common_prefix():
    assert common_prefix_steps(["a\n", "b\n", "c"], ["a\n", "b\n", "d"]) == 2
    assert common_prefix_steps(["x\n"], ["y\n"]) == 0
