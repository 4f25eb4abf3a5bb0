"""The one grader: extraction rules, numeric fast path (and its math-verify twin), symbolic cases,
adversarial input, threads, and the worker's timeout/restart."""
from __future__ import annotations

import os
import random
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from envs import _symbolic
from envs.grading import MAX_ANSWER_CHARS, extract_answer, grade, normalize_answer


@pytest.fixture(scope="module", autouse=True)
def warm_worker():
    """Start the math-verify worker once, so timing assertions do not include its start-up."""
    assert grade("\\boxed{\\frac{2}{4}}", "0.5")
    yield


# ------------------------------------------------------------------------------- extraction

@pytest.mark.parametrize("text, expected", [
    ("48/2 = 24\n24+48 = 72\n#### 72", "72"),
    ("#### 1\nno wait\n#### 1,000\n", "1,000"),                      # last ####
    ("#### $18.00.", "$18.00"),                                       # currency kept; see normalize
    ("#### \\boxed{5}", "5"),
    ("We get $\\boxed{\\frac{1}{\\sqrt{2}}}$.", "\\frac{1}{\\sqrt{2}}"),  # nested braces
    ("\\boxed{1} then \\boxed{\\{2, 3\\}}", "\\{2, 3\\}"),              # last box
    ("\\fbox{42}", "42"),
    ("\\boxed{}", None), ("\\boxedx 5", "5"),                          # not a box: fallback
    ("so the result is \\boxed 7$.", "7"),                             # brace-less form
    ("The answer is 42.", "42"),
    ("So the answer is: **18**.\nThanks", "18"),
    ("The final answer is $\\frac{3}{4}$. I hope it is correct.", "\\frac{3}{4}"),
    ("Final Answer: 7", "7"),
    ("The answer is 12. She is happy.", "12"),
    ("so she has 7 apples left", "7"),                                 # last-number fallback
    ("5-3=2", "2"),
    ("then x = -4", "-4"),
    ("a discount of 25%", "25%"),
    ("about .5 of it", ".5"),
    ("It costs 1,234.5 in total", "1,234.5"),
    ("cut off: \\boxed{\\frac{1}{2}", "2"),                            # unterminated box
])
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


@pytest.mark.parametrize("text", ["", "no numbers at all", "\\boxed{", "#### ", "x٣ ๓"])
def test_extract_answer_none(text):
    assert extract_answer(text) is None


def test_fallback_flag():
    assert extract_answer("she has 7 apples", fallback_last_number=False) is None
    assert extract_answer("#### 7", fallback_last_number=False) == "7"
    assert not grade("she has 7 apples", "7", fallback_last_number=False)
    assert grade("she has 7 apples", "7")


@pytest.mark.parametrize("answer, expected", [
    ("1,000", "1000"), ("$18.50", "18.5"), ("25\\%", "25%"), ("18 dollars", "18"), ("-0.0", "0"),
    ("10,\\!000", "10000"), ("1{,}000", "1000"), ("100.000", "100"), ("5\\text{ cm}", "5"),
    ("12345678901234567890123456789012.50", "12345678901234567890123456789012.5"),
    ("\\left( 3, \\dfrac{\\pi}{2} \\right)", "( 3, \\frac{\\pi}{2} )"), ("x  +   1", "x + 1"),
])
def test_normalize_answer(answer, expected):
    assert normalize_answer(answer) == expected


# ------------------------------------------------------------------------------- equivalence

GSM8K_TRUE = [
    ("Natalia sold 48/2 = 24 clips in May.\n48+24 = 72\n#### 72", "72"),
    ("She pays $1,000 in total.\n#### 1,000", "1000"),
    ("#### 70000", "The cost came out to $<<80000+50000=130000>>130,000\n#### 70,000"),
    ("#### $18.00", "18"),
    ("#### 18 dollars", "18"),
    ("#### 18.", "18"),
    ("The answer is 18.", "18"),
    ("He is left with -5 degrees.\n#### -5", "-5"),
    ("#### \u22125", "-5"),                   # unicode minus
    ("#### 0.5", ".5"),
    ("#### 25%", "25"),
    ("#### 25%", "0.25"),
    ("#### 0.25", "25%"),
    ("#### 10 percent", "0.1"),
    ("So she made 18 every day", "18"),
]
MATH_TRUE = [
    ("$\\boxed{\\dfrac{1}{2}}$", "\\frac{1}{2}"),
    ("\\boxed{0.5}", "\\frac12"),
    ("\\boxed{2\\sqrt{2}}", "\\sqrt{8}"),
    ("\\boxed{[1,2)}", "[1, 2)"),
    ("\\boxed{(3, \\pi/2)}", "\\left( 3, \\frac{\\pi}{2} \\right)"),
    ("\\boxed{\\pi/2}", "\\frac{\\pi}{2}"),
    ("\\boxed{1.5707963}", "\\frac{\\pi}{2}"),
    ("\\boxed{-\\pi/6}", "-\\frac{\\pi}{6}"),
    ("\\boxed{10\\%}", "10"),
    ("\\boxed{10000}", "10,\\!000"),
    ("\\boxed{(x+1)^2}", "x^2+2x+1"),
    ("\\boxed{(-\\infty,2)\\cup(3,\\infty)}", "(-\\infty, 2) \\cup (3, \\infty)"),
    ("\\boxed{3, 2}", "2,3"),
    ("\\boxed{x=5}", "5"),
    ("\\boxed{30^\\circ}", "30"),
    ("\\boxed{864}", "864 \\mbox{ inches}^2"),
    ("\\boxed{\\text{Evelyn}}", "\\text{Evelyn}"),
    ("\\boxed{\\text{(C)}}", "(C)"),
    ("\\boxed{\\begin{pmatrix} 0.2 \\\\ -3.6 \\end{pmatrix}}",
     "\\begin{pmatrix} 1/5 \\\\ -18/5 \\end{pmatrix}"),
    ("The final answer is $\\frac{5}{6}$. I hope it is correct.", "\\frac{10}{12}"),
    ("... so $\\log_8 2 = \\boxed{\\frac{1}{3}}$", "We have $8=2^3$, so $\\log_8 2=\\boxed{\\frac{1}{3}}$"),
]
FALSE = [
    ("#### 17", "18"),
    ("#### 1000001", "1000000"),          # integers compare exactly
    ("#### 18.1", "18"),
    ("#### 12", "1,2"),                   # "1,2" is a list, not one thousand two
    ("#### 25%", "0.25%"),
    ("\\boxed{\\frac{1}{3}}", "\\frac{1}{2}"),
    ("\\boxed{(3,4)}", "(3,4]"),
    ("\\boxed{\\sqrt{2}}", "2"),
    ("\\boxed{x^2-1}", "(x+1)^2"),
    ("\\boxed{5x}", "5"),
    ("\\boxed{3.14}", "\\pi"),
    ("\\boxed{\\text{(B)}}", "(C)"),
    ("no answer here", "5"),
    ("", "5"),
    ("#### 5", ""),
    ("#### 5", "\\boxed{"),               # a broken reference never matches
]


@pytest.mark.parametrize("response, reference", GSM8K_TRUE + MATH_TRUE)
def test_grade_true(response, reference):
    assert grade(response, reference) is True


@pytest.mark.parametrize("response, reference", FALSE)
def test_grade_false(response, reference):
    assert grade(response, reference) is False


@pytest.mark.parametrize("pred, ref, expected", [
    ("0.50004", "0.5", True), ("0.50006", "0.5", False),           # |d| <= 1e-4 * |ref|:
    ("0.0010001", "0.001", True), ("0.0010002", "0.001", False),   # relative at every scale
    ("0.3562", "0.35625", False), ("0.35625", "0.3562", False),    # abs 5e-5, rel 1.4e-4
    ("0.356253", "0.35625", True), ("0.00001", "0", False), ("0.0", "0", True),
    ("2.50024", "2.5", True), ("2.50026", "2.5", False),
    ("12346.5", "12345.6", True), ("12347", "12345.6", False),
    ("3.14159", "3.1416", True), ("-2.0", "-2", True), ("2", "-2", False),
    ("1000000", "1000001", False), ("1000000.5", "1000000", True),  # a decimal point opts in
])
def test_numeric_tolerance_rule(pred, ref, expected):
    assert grade(f"#### {pred}", ref) is expected


def test_numeric_fast_path_agrees_with_math_verify():
    """Slow twin: on plain numbers the in-process verdict equals math-verify's."""
    rng = random.Random(0)
    pairs = []
    for _ in range(12):
        n = rng.randint(-10**6, 10**6)
        d = round(rng.uniform(-100, 100), 3)
        pairs += [(f"{n:,}", str(n)), (str(n), str(n + rng.randint(1, 50))),
                  (f"{d:.3f}0", f"{d:.3f}"), (f"{d:.3f}", f"{d + 0.5:.3f}")]
    pairs += [("10%", "0.1"), ("10%", "10"), ("0.5", "0.25")]
    for pred, ref in pairs:
        assert grade(f"#### {pred}", ref) == _symbolic.verify(ref.replace(",", "{,}"), pred,
                                                             timeout_s=10), (pred, ref)


def test_numeric_path_is_fast():
    """GSM8K/arith responses never reach the worker: well under a millisecond per call."""
    response = "Ben has 3 coins.\n3*5=15\n15+4=19\n19-2=17\n#### 17"
    n = 2000
    start = time.perf_counter()
    for _ in range(n):
        assert grade(response, "17")
    per_call = (time.perf_counter() - start) / n
    assert per_call < 5e-4, per_call


# ------------------------------------------------------------------------------- adversarial

MB = 1 << 20
ADVERSARIAL = [
    ("1" * MB, "1"),                                   # a 1 MB number
    ("x" * MB, "1"),                                   # 1 MB, no answer
    ("#### " + "9" * MB, "9"),
    ("\\boxed{" + "a" * MB + "}", "a"),
    ("The answer is " + "(" * MB, "1"),
    ("\\boxed{" + "{" * 10_000 + "1" + "}" * 10_000 + "}", "1"),   # 10k nested braces
    ("\\boxed{" + "{" * 4_000 + "1" + "}" * 4_000 + "}", "1"),     # deep but under the length cap
    ("\\boxed{" + "{" * 10_000, "1"),                  # unterminated, 10k deep
    ("\\boxed{" * 10_000, "1"),
    ("\\boxed{", "1"),
    ("\\boxed{\\}", "1"),
    ("\\" * 10_000, "1"),
    ("#### \\", "5"),
    ("#### \\frac{", "\\frac{1}{2}"),
    ("#### ٣", "3"),                                   # Arabic-Indic digit is not 3
    ("#### 𝟑", "3"),                                   # mathematical bold digit
    ("The answer is 😀", "3"),
    ("#### \x00\x01\x02", "1"),
    ("#### \ud800", "1"),                              # lone surrogate
    ("#### " + "1+" * 2_000 + "1", "3"),
]


@pytest.mark.parametrize("response, reference", ADVERSARIAL,
                         ids=[f"adv{i}" for i in range(len(ADVERSARIAL))])
def test_adversarial_false_and_quick(response, reference):
    start = time.perf_counter()
    assert grade(response, reference, timeout_s=2.0) is False
    assert time.perf_counter() - start < 3.0


def test_length_cap_applies_to_reference_too():
    long = "1" * (MAX_ANSWER_CHARS + 1)
    assert not grade(f"#### {long}", long)
    assert grade(f"#### {long[:-1]}", long[:-1])


def test_model_text_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    payloads = [f"__import__('os').system('touch {marker}')",
                f"eval(\"open('{marker}', 'w')\")",
                f"(lambda: open('{marker}', 'w'))()"]
    for text in payloads:  # each reaches the symbolic path (not a number, not equal strings)
        assert not grade(f"#### {text}", "0")
        assert not grade(f"\\boxed{{{text}}}", "x")
        assert not grade("#### 0", text)
    assert not marker.exists()


# ------------------------------------------------------------------------------- concurrency

def test_eight_threads_at_once():
    cases = [(r, g, True) for r, g in GSM8K_TRUE + MATH_TRUE] + [(r, g, False) for r, g in FALSE]
    jobs = [cases[i::8] for i in range(8)]

    def run(batch):
        return [grade(r, g) == want for r, g, want in batch for _ in range(2)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(run, jobs))
    assert all(all(r) for r in results)


def test_timeout_kills_worker_and_next_call_works():
    assert grade("\\boxed{(x+1)^2}", "x^2+2x+1")
    old = _symbolic.worker_pid()
    assert old is not None
    start = time.perf_counter()
    # sympy hangs on a power tower (it tries to evaluate it); the call must give up on time
    assert grade("\\boxed{9^{9^{9^{9}}}}", "1", timeout_s=1.0) is False
    assert time.perf_counter() - start < 3.0
    with pytest.raises(ProcessLookupError):
        os.kill(old, 0)  # killed and reaped
    replacement = _symbolic.worker_pid()
    assert replacement not in (None, old)  # the spare, started while the request ran
    # an injected tiny timeout on an ordinary case times out too
    assert grade("\\boxed{(x+2)^7}", "(2+x)^7", timeout_s=1e-4) is False
    assert grade("\\boxed{(x+1)^3}", "x^3+3x^2+3x+1", timeout_s=60)  # a fresh worker answers
    assert _symbolic.worker_pid() not in (None, old)


PATHOLOGICAL = ["\\boxed{9^{9^{9^{9}}}}", "\\boxed{10^{10^{10^{10}}}-1}", "\\boxed{99!!!}",
                "\\boxed{(x+1)^{100000}}"]


def test_every_call_returns_within_three_seconds():
    """Worst case with the default budget: pathological answers back to back (each kills the
    worker, so the next one also waits for a replacement), then an ordinary one."""
    for response in PATHOLOGICAL + PATHOLOGICAL[:1]:
        start = time.perf_counter()
        assert grade(response, "x^2") is False
        assert time.perf_counter() - start < 3.0, response
    start = time.perf_counter()
    grade("\\boxed{\\frac{1}{\\sqrt{2}}}", "\\frac{\\sqrt{2}}{2}")  # verdict may miss the budget
    assert time.perf_counter() - start < 3.0
    assert grade("\\boxed{\\frac{1}{\\sqrt{2}}}", "\\frac{\\sqrt{2}}{2}", timeout_s=60)


# ----------------------------------------------------------------------- verdict edge cases

@pytest.mark.parametrize("response, reference, expected", [
    ("#### 3\nWait, I made an error. The total is \\boxed{4}.", "4", True),   # last final answer
    ("#### 3\nWait, I made an error. The total is \\boxed{4}.", "3", False),
    ("\\boxed{3}\nno: 2+2=4\n#### 4", "4", True),
    ("\\boxed{3}\nno: 2+2=4\n#### 4", "3", False),
    ("#### \\boxed{5}", "5", True),                                          # a box inside ####
    ("#### 3\nthen \\boxed{4", "3", True),                                   # cut-off box: ####
    ("#### 11111", "11,\\! 111", True),                                      # TeX thin space
    ("#### 1234567", "1,\\! 234,\\! 567", True),
    ("The answer is $11,\\! 111$.", "11111", True),
    ("#### 11111", "#### 11,\\! 111", True),
    ("#### 11", "11,\\! 111", False),
])
def test_final_answer_and_separator_rules(response, reference, expected):
    assert grade(response, reference) is expected


def test_thin_space_separator_normalizes():
    assert normalize_answer("11,\\! 111") == "11111"
    assert normalize_answer("11,\\!111") == "11111"
    assert normalize_answer("1, 2") == "1, 2"  # a plain comma and space stays a list


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX fork")
def test_forked_child_gets_its_own_worker():
    assert grade("\\boxed{2\\sqrt{2}}", "\\sqrt{8}", timeout_s=60)  # a replacement worker may still import
    parent_worker = _symbolic.worker_pid()
    pid = os.fork()
    if pid == 0:  # child: must not talk to (or kill) the parent's worker
        ok = grade("\\boxed{3\\sqrt{2}}", "\\sqrt{18}") and _symbolic.worker_pid() != parent_worker
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert _symbolic.worker_pid() == parent_worker
    assert grade("\\boxed{4\\sqrt{2}}", "\\sqrt{32}")
