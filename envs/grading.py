"""The one answer grader: extract a final answer from text and decide if it equals a reference.

Every reward in the system goes through `grade`: data labels, MCTS terminal rewards (MCTS-DPO
sec. 3.3), OREO outcome rewards R in {0, 1} (OREO eq. 1), and reported accuracy. One checker for
all of them (algorithms.md sec. 8.6): two checkers give two accuracies on MATH (sec. 7).

Extraction (`extract_answer`), first rule that matches wins:

1-2. A final-answer marker, the LAST one in the text whichever its kind (a response that gives
   `#### 3` and then corrects itself with `\\boxed{4}` answers 4, and vice versa):
   `#### x` (GSM8K, the arith task): the rest of the line after it;
   `\\boxed{x}` / `\\fbox{x}` (MATH): its brace-balanced content (also the brace-less form
   `\\boxed 5`). An unterminated last box (a cut-off response) does not count; the last `####`
   before it is used, else the later rules are tried.
3. "The answer is x" / "final answer is x" / "Answer: x": the rest of the line after the last
   cue; a leading `$...$` is unwrapped, so Minerva's "The final answer is $x$. I hope it is
   correct." gives `x`.
4. Fallback, on by default (`fallback_last_number=True`): the last number in the text, as the
   DeepSeek-Math evaluator that OREO adopts does (algorithms.md 2.9; MCTS-DPO 3.8 too).
   Turn it off to require an explicit answer marker. Digits are ASCII 0-9 only.

A reference may be a bare answer ("18", "\\frac{1}{2}") or a full reference solution: if it
holds `####` or `\\boxed` the answer is extracted from it (rules 1-2 only, never the
last-number fallback); otherwise the whole string is the answer.

Equivalence (`grade`), cheapest first:

1. Numeric fast path, in process (microseconds): when both answers are plain numbers -- optional
   sign and `$`, thousands separators in groups of three ("1,000", LaTeX "1{,}000", "10,\\!000",
   "11,\\! 111"),
   decimals, an optional `%`, trailing unit words of two or more letters ("18 dollars",
   "5\\text{ cm}"), degree marks and a trailing "." -- the verdict is final:
   * both written as integers: exact equality (so no GSM8K-sized integer is "close enough");
   * otherwise: |pred - ref| <= 1e-4 * |ref|, relative at every scale as in MCTS-DPO (OREO's
     absolute 1e-3 would let 0.3562 match 0.35625); a zero reference needs an exact zero;
   * percent: when exactly one side carries `%`, that side may be read as x or x/100 ("25%"
     matches "25" and "0.25"); when both do, the numbers before `%` are compared.
2. Equal normalized strings (whitespace removed): True.
3. Symbolic path: math-verify (`verify(parse(ref), parse(pred))`, each answer wrapped in
   `\\boxed{}`) in a persistent worker subprocess with a per-call budget (see `envs._symbolic`);
   a timeout, crash or parse failure counts as False.

Worst case: a call returns within `DEFAULT_TIMEOUT_S` plus the milliseconds of extraction, so
under 3 s whatever the input (pathological expressions included: sympy is killed at the
deadline and a spare worker, started while the slow request ran, takes over). Two exceptions:
the first symbolic call of a process waits for the worker to import math-verify (about a
second; call `warm_up()` at start-up to pay it early), and threads calling at once queue for
the one worker before their budgets start.

Safety: model text is never executed. Only math-verify's parser (LaTeX via ANTLR; sympy's
`parse_expr` only on digit-and-operator strings) sees it, and only in the worker process, which
has an address-space cap and is killed on timeout. Answers longer than `MAX_ANSWER_CHARS` or
nested deeper than `MAX_BRACE_DEPTH` braces are False without parsing. All functions are
thread-safe.
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import NamedTuple

from envs import _symbolic

__all__ = ["grade", "extract_answer", "normalize_answer", "warm_up", "MAX_ANSWER_CHARS",
           "MAX_BRACE_DEPTH", "DEFAULT_TIMEOUT_S"]

MAX_ANSWER_CHARS = 10_000
"""Extracted answers (prediction or reference) longer than this grade False without parsing."""
MAX_BRACE_DEPTH = 32
"""Answers with deeper `{}` nesting grade False without parsing (MATH-500 solutions reach 4)."""
DEFAULT_TIMEOUT_S = 2.5
"""Per-call budget of the symbolic path (waiting for a restarting worker included); math-verify
calls take 1-260 ms (environment.md sec. 5), so only pathological input reaches it."""

_BOX_RE = re.compile(r"\\(?:boxed|fbox)")
_BARE_BOX_RE = re.compile(r"[^\s$]+")
_BRACE_RE = re.compile(r"[{}]")
_CUE_RE = re.compile(r"(?:\banswer\s+is\b|\banswer\s*(?:\*\*)?\s*:)", re.IGNORECASE)
# A number in running text: thousands groups of three or plain digits, optional decimals and `%`;
# a minus sign counts only where it cannot be a binary minus ("5-3" ends in 3, not -3).
_LAST_NUMBER_RE = re.compile(
    r"(?:(?:(?<![\w)\]}.])-)?(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?|(?<![\w.])\.[0-9]+)"
    r"(?:[ \t]*\\?%)?", re.ASCII)
_NUMBER_RE = re.compile(
    r"(?P<sign>[-+]?)\s*(?P<num>(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?|\.[0-9]+)"
    r"\s*(?P<pct>%)?(?P<units>(?:\s*[A-Za-z]{2,}(?![A-Za-z])\.?)*)\s*\.?", re.ASCII)
_NOT_UNITS = frozenset({"pi", "sqrt", "inf", "infty", "infinity", "oo", "sin", "cos", "tan", "log",
                        "ln", "exp", "mod", "pmod"})
_TEXT_RE = re.compile(r"\\(?:text|textbf|textit|mbox|mathrm)\s*\{([^{}]*)\}")
# Layout-only LaTeX: `\!` `\,` `\;` `\:` `\left` `\right` `\displaystyle` are dropped, `\ ` and
# `\quad` become spaces; `\\` (a row break, as in pmatrix) is matched first so it stays intact.
_LAYOUT_RE = re.compile(r"\\\\|\\[!,;: ]|\\(?:left|right|displaystyle|q?quad)(?![A-Za-z])")
# A TeX thousands separator `,\!` (negative thin space), with any spaces after it, between digits.
_THIN_SEPARATOR_RE = re.compile(r"(?<=[0-9]),\s*\\!\s*(?=[0-9]{3}(?![0-9]))", re.ASCII)
_DEGREE_RE = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°")
_DELIMS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))


# --------------------------------------------------------------------------------------------
# Extraction
# --------------------------------------------------------------------------------------------

def _boxed_content(text: str, start: int) -> str | None:
    """Content of the `\\boxed`/`\\fbox` whose backslash is at `start`; None if unterminated."""
    i = _BOX_RE.match(text, start).end()
    if i < len(text) and text[i] == " ":  # brace-less `\boxed 5`: up to the next space or `$`
        i += 1
        while i < len(text) and text[i] == " ":
            i += 1
        if i < len(text) and text[i] != "{":
            return _BARE_BOX_RE.match(text, i).group(0)
    if i >= len(text) or text[i] != "{":
        return None
    depth = 0
    for m in _BRACE_RE.finditer(text, i):  # visits braces only: fast on long texts
        depth += 1 if m.group(0) == "{" else -1
        if depth == 0:
            return text[i + 1:m.start()]
    return None


def _last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` or `\\fbox{...}` in `text`, or None."""
    starts = [text.rfind("\\boxed"), text.rfind("\\fbox")]
    start = max(starts)
    if start < 0:
        return None
    return _boxed_content(text, start)


def _after_hashes(text: str) -> str | None:
    """The rest of the line after the last `####`, or None if there is none or it is empty."""
    i = text.rfind("####")
    if i < 0:
        return None
    line = text[i + 4:].split("\n", 1)[0]
    return _clean(line) or None


def _last_marked(text: str) -> str | None:
    """The answer after the last final-answer marker (`####` or `\\boxed`), or None.

    A box inside the `####` line belongs to it ("#### \\boxed{5}"); a cut-off last box falls
    back to the last `####`.
    """
    hashes = text.rfind("####")
    box = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if box > hashes and (hashes < 0 or "\n" in text[hashes:box]):
        boxed = _boxed_content(text, box)
        if boxed is not None and _clean(boxed):
            return boxed
    return _after_hashes(text) if hashes >= 0 else None


def _after_cue(text: str) -> str | None:
    """What follows the last "answer is" / "answer:" cue (its first non-empty line), or None."""
    last = None
    for last in _CUE_RE.finditer(text):
        pass
    if last is None:
        return None
    rest = text[last.end():].lstrip(" \t:*\n")
    for left, right in _DELIMS:  # "$x$. I hope it is correct." -> x
        if rest.startswith(left):
            close = _find_unescaped(rest, right, len(left))
            if close > 0:
                return _clean(rest[len(left):close]) or None
    line = rest.split("\n", 1)[0]
    sentence_end = re.search(r"\.\s", line)
    if sentence_end:
        line = line[:sentence_end.start()]
    return _clean(line) or None


def _find_unescaped(text: str, token: str, start: int) -> int:
    """Index of the first `token` at or after `start` not preceded by a backslash ("\\$"), or -1."""
    i = text.find(token, start)
    while i > 0 and text[i - 1] == "\\":
        i = text.find(token, i + 1)
    return i


def _clean(ans: str) -> str:
    """Strip punctuation, `**` and math delimiters around an answer; unwrap a `\\boxed{}`."""
    ans = ans.strip().lstrip(":").strip()
    if _BOX_RE.search(ans):  # "#### \boxed{5}" -> 5; an unterminated box (cut-off text) -> ""
        boxed = _last_boxed(ans)
        return "" if boxed is None else _clean(boxed)
    for _ in range(3):  # nested wrappers like "**$5$**."
        ans = ans.strip(" *").rstrip(" .,;")
        for left, right in _DELIMS:
            if len(ans) >= len(left) + len(right) and ans.startswith(left) and ans.endswith(right):
                ans = ans[len(left):len(ans) - len(right)].strip()
    return ans


def _last_number(text: str) -> str | None:
    last = None
    for last in _LAST_NUMBER_RE.finditer(text):
        pass
    return None if last is None else last.group(0)


def extract_answer(text: str, *, fallback_last_number: bool = True) -> str | None:
    """The final answer in a model response or reference solution (rules in the module doc).

    Args:
        text: a response or solution.
        fallback_last_number: if no `####`, `\\boxed{}` or "answer is" marker is found, return the
            last number in the text (DeepSeek-Math / OREO behaviour). False: return None instead.

    Returns:
        The answer string, stripped of surrounding `$`, `**` and trailing "." (not normalized;
        see `normalize_answer`), or None if nothing was found.
    """
    if not text:
        return None
    for rule in (_last_marked, _after_cue):
        ans = rule(text)
        if ans is not None:
            ans = _clean(ans)
            if ans:
                return ans
    return _last_number(text) if fallback_last_number else None


def _reference_answer(reference: str) -> str | None:
    """A bare reference answer as is; a full solution's last `####` or `\\boxed{}` content."""
    if "####" in reference or _BOX_RE.search(reference):
        ans = _last_marked(reference)
        return None if ans is None else _clean(ans)
    return _clean(reference)


# --------------------------------------------------------------------------------------------
# Normalization and the numeric fast path
# --------------------------------------------------------------------------------------------

def _light_normalize(ans: str) -> str:
    """Drop layout-only LaTeX (`\\left`, `\\!`, `\\,`), `$`, `dfrac`/`tfrac`, `{,}`, `\\%`."""
    ans = ans.replace("\u2212", "-").replace("{,}", ",").replace("\\%", "%")
    ans = _THIN_SEPARATOR_RE.sub(",", ans)  # "11,\\! 111" -> "11,111"
    ans = ans.replace("\\$", "").replace("$", "")  # currency or stray math delimiters
    ans = ans.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    ans = _LAYOUT_RE.sub(_layout_replacement, ans)
    return _clean(" ".join(ans.split()))


def _layout_replacement(m: re.Match) -> str:
    token = m.group(0)
    if token == "\\\\":
        return token
    return " " if token in ("\\ ", "\\quad", "\\qquad") else ""


class _Number(NamedTuple):
    value: Decimal
    is_integer: bool  # written without a decimal point
    percent: bool


def _parse_number(ans: str) -> _Number | None:
    """A plain number with optional sign, `$`, thousands commas, `%`, units; else None."""
    ans = _DEGREE_RE.sub("", _TEXT_RE.sub(r" \1", ans)).strip()
    m = _NUMBER_RE.fullmatch(ans)
    if m is None:
        return None
    units = m.group("units").replace(".", " ").lower().split()
    if any(u in _NOT_UNITS for u in units):
        return None
    percent = m.group("pct") is not None or (units[:1] in (["percent"], ["pct"]))
    digits = m.group("num").replace(",", "")
    try:
        value = Decimal(digits)
    except InvalidOperation:  # pragma: no cover - the regex admits only valid decimals
        return None
    if m.group("sign") == "-":
        value = -value
    return _Number(value, "." not in digits, percent)


def _numbers_equal(pred: _Number, ref: _Number) -> bool:
    """Exact for two integers; else |pred - ref| <= 1e-4 * |ref|; x% may mean x/100."""
    return any(_close(p, r, exact=p_int and r_int)
               for p, p_int in _readings(pred, other_percent=ref.percent)
               for r, r_int in _readings(ref, other_percent=pred.percent))


def _readings(x: _Number, *, other_percent: bool) -> list[tuple[Decimal, bool]]:
    """(value, is_integer) readings of x: "25%" against a bare number may be 25 or 0.25."""
    if x.percent and not other_percent:
        return [(x.value, x.is_integer), (x.value.scaleb(-2), False)]
    return [(x.value, x.is_integer)]


def _close(pred: Decimal, ref: Decimal, *, exact: bool) -> bool:
    if pred == ref:
        return True
    if exact:
        return False
    return abs(pred - ref) <= Decimal("1e-4") * abs(ref)


def normalize_answer(ans: str) -> str:
    """A canonical string for an extracted answer, e.g. as a key for majority voting (maj@k).

    Plain numbers become their shortest decimal form ("1,000" -> "1000", "$18.50" -> "18.5",
    "25\\%" -> "25%", "18 dollars" -> "18"); anything else is lightly normalized LaTeX
    (no `\\left`/`\\right`/spacing commands, `\\dfrac` -> `\\frac`, single spaces).
    """
    light = _light_normalize(ans)
    num = _parse_number(light)
    if num is None:
        return light
    text = format(num.value, "f")  # exact: no rounding to the context precision
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    text = "0" if text in ("-0", "") else text
    return text + ("%" if num.percent else "")


def _brace_depth(s: str) -> int:
    depth = deepest = 0
    for m in _BRACE_RE.finditer(s):
        depth += 1 if m.group(0) == "{" else -1
        deepest = max(deepest, depth)
    return deepest


# --------------------------------------------------------------------------------------------
# Grading
# --------------------------------------------------------------------------------------------

def grade(response: str, reference: str, *, fallback_last_number: bool = True,
          timeout_s: float = DEFAULT_TIMEOUT_S) -> bool:
    """Whether the final answer in `response` equals `reference` (outcome reward R in {0, 1}).

    Args:
        response: model output (any length; only the extracted answer is compared).
        reference: a bare answer or a full reference solution with `####` / `\\boxed{}`.
        fallback_last_number: see `extract_answer`.
        timeout_s: budget for the symbolic (math-verify) check of this call, waiting for the
            worker included; on expiry the worker is killed, a replacement starts in the
            background and the call returns False. Not used by the fast paths.

    Returns:
        True iff the answers are equivalent under the rules in the module docstring. Never raises
        on odd input (it returns False); raises RuntimeError only if the worker cannot start.
    """
    pred = extract_answer(response, fallback_last_number=fallback_last_number)
    ref = _reference_answer(reference)
    if not pred or not ref:
        return False
    if len(pred) > MAX_ANSWER_CHARS or len(ref) > MAX_ANSWER_CHARS:
        return False
    pred_n, ref_n = _light_normalize(pred), _light_normalize(ref)
    pred_num, ref_num = _parse_number(pred_n), _parse_number(ref_n)
    if pred_num is not None and ref_num is not None:
        return _numbers_equal(pred_num, ref_num)
    if "".join(pred_n.split()) == "".join(ref_n.split()):
        return True
    if _brace_depth(pred_n) > MAX_BRACE_DEPTH or _brace_depth(ref_n) > MAX_BRACE_DEPTH:
        return False
    return _symbolic.verify(ref_n, pred_n, timeout_s=timeout_s)


def warm_up() -> None:
    """Start this process's math-verify worker now, so no later `grade` call waits for it."""
    _symbolic.start()
