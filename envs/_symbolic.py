"""math-verify in a persistent worker subprocess, with a per-call timeout that works in any thread.

The symbolic half of `envs.grading.grade`. Why a subprocess:

* math-verify's own timeouts use `signal.alarm`, which only works in the main thread; inside
  threads, async servers and Ray actors they raise. So the worker calls `parse(...,
  parsing_timeout=None)` and `verify(..., timeout_seconds=None)` and the parent enforces the
  limit from outside (environment.md sec. 5).
* sympy can hang or exhaust memory on adversarial input (e.g. towers of powers); a thread cannot
  be stopped, a process can. The worker also runs under an address-space cap.

Why `python -c` and not `multiprocessing` spawn/forkserver: those re-import the parent's
`__main__` in the child, so a launch script that imports torch would drag torch into every
grader worker. The `-c` child imports only this module (and the import-light `envs` package)
and math-verify. Startup takes about a second; it happens lazily on the first symbolic call.

Protocol: one JSON line `[gold, pred]` per request on the worker's stdin, one line `1` or `0`
back on a private copy of its stdout (its fd 1 is pointed at stderr so stray prints cannot
corrupt replies); after start-up it writes `ready`. One worker per process, one request at a
time under a lock: many threads may call `verify` at once. On timeout the worker is killed, the
call returns False and a spare worker takes over: a request still running after SPARE_AFTER_S
starts one, so it has imported math-verify by the time the request is killed.
A call's budget covers a restarting worker, so a call alone outlasts it by milliseconds at most;
threads queue for the worker first (not charged), and the first start in a process waits up to
STARTUP_TIMEOUT_S. POSIX only (selectors on pipes).
"""
from __future__ import annotations

import atexit
import json
import os
import selectors
import subprocess
import sys
import threading
import time

__all__: list[str] = []  # private module; `envs.grading` is the interface

STARTUP_TIMEOUT_S = 120.0
"""How long the first call waits for the worker to import math-verify (slow on loaded CPUs)."""
SPARE_AFTER_S = 0.5
"""A request still running after this long (ordinary ones take 1-260 ms) starts a spare worker, so
the replacement is warm by the time the request's budget runs out and it is killed."""
MEMORY_LIMIT_BYTES = 4 << 30
"""Address-space cap of the worker (RLIMIT_AS); a blow-up inside sympy becomes False."""


class _Worker:
    """One `python -c` child that answers `[gold, pred]` requests; restarted after a timeout."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._sel: selectors.BaseSelector | None = None
        self._buf = b""
        self._ready = False
        self._started_once = False
        self._spare: tuple[subprocess.Popen, selectors.BaseSelector, bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The worker's process id, or None before the first symbolic call (for tests)."""
        return None if self._proc is None else self._proc.pid

    def verify(self, gold: str, pred: str, *, timeout_s: float) -> bool:
        """math-verify's verdict on (gold, pred), or False once `timeout_s` has passed.

        The budget starts when this call has the worker (threads queue for it; a wrong False for a
        call that only waited its turn would corrupt rewards) and covers waiting for a restarting
        worker; the very first start of a process's worker (math-verify's import) is outside it. On expiry mid-request
        the worker is killed and a replacement is spawned at once, in the background.
        """
        request = (json.dumps([gold, pred]) + "\n").encode()
        self._lock.acquire()  # queueing behind other threads' calls is not charged to this budget
        deadline = time.monotonic() + timeout_s
        try:
            if self._proc is None or self._proc.poll() is not None:
                self._spawn()
            if not self._ready:
                cold = not self._started_once
                if not self._await_ready(deadline):
                    return False
                if cold:  # the process's first start is outside the budget
                    deadline = time.monotonic() + timeout_s
            try:
                self._proc.stdin.write(request)
                self._proc.stdin.flush()
            except OSError:  # died between calls (e.g. killed from outside): respawn
                self._spawn()
                return False
            reply = self._read_line(min(deadline, time.monotonic() + SPARE_AFTER_S))
            if reply is None and self._proc.poll() is None and time.monotonic() < deadline:
                if self._spare is None:  # a slow request may be killed: warm up its replacement now
                    self._spare = self._popen()
                reply = self._read_line(deadline)
            if reply is None:  # timeout, or the worker died mid-request
                self._spawn()
                return False
            return reply == b"1"
        finally:
            self._lock.release()

    def start(self) -> None:
        """Start the worker (if needed) and wait until it is ready."""
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._spawn()
            if not self._ready:
                self._await_ready(time.monotonic() + STARTUP_TIMEOUT_S)

    def _spawn(self) -> None:
        """Kill the current worker (if any); promote the warm spare, else start a new one (no wait)."""
        self._stop()
        spare, self._spare = self._spare, None
        if spare is None or spare[0].poll() is not None:
            if spare is not None:
                _close(*spare)
            spare = self._popen()
        self._proc, self._sel, self._buf = spare
        self._ready = False

    def _popen(self) -> tuple[subprocess.Popen, selectors.BaseSelector, bytes]:
        if not sys.executable:
            raise RuntimeError("grading: sys.executable is unset; cannot start the math-verify worker")
        code = (f"import json, sys; sys.path[:0] = json.loads(sys.argv[1]); "
                f"from {__name__} import _serve; _serve()")
        paths = [p for p in sys.path if p]
        proc = subprocess.Popen([sys.executable, "-c", code, json.dumps(paths)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0, close_fds=True)
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        return proc, sel, b""

    def _await_ready(self, deadline: float) -> bool:
        """Wait for the worker's `ready` line: until `deadline`, or STARTUP_TIMEOUT_S on the
        process's first start. False if it is still starting (it keeps starting); raises if it
        died or never started."""
        if not self._started_once:
            deadline = time.monotonic() + STARTUP_TIMEOUT_S
        line = self._read_line(deadline)
        if line == b"ready":
            self._ready = self._started_once = True
            return True
        if line is None and self._proc.poll() is None and self._started_once:
            return False  # a replacement still importing: this call is out of budget
        self._stop()
        raise RuntimeError("grading: the math-verify worker did not start (see its stderr above)")

    def _read_line(self, deadline: float) -> bytes | None:
        """The next reply line, or None at the deadline or on EOF."""
        fd = self._proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not self._sel.select(left):
                return None
            chunk = os.read(fd, 4096)
            if not chunk:
                return None
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line

    def _stop(self) -> None:
        """Kill the worker (if any) and wait for it, so no zombie is left behind."""
        proc, self._proc = self._proc, None
        if self._sel is not None:
            self._sel.close()
            self._sel = None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL is not ignorable
            pass
        for pipe in (proc.stdin, proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass

    def close(self) -> None:
        with self._lock:
            self._stop()
            if self._spare is not None:
                _close(*self._spare)
                self._spare = None

    def forget_after_fork(self) -> None:
        """In a forked child: drop the parent's worker without touching it; start afresh."""
        self._lock = threading.Lock()
        if self._proc is not None:  # close only this process's copies of the pipe ends
            for pipe in (self._proc.stdin, self._proc.stdout):
                try:
                    pipe.close()
                except OSError:
                    pass
        if self._spare is not None:
            for pipe in (self._spare[0].stdin, self._spare[0].stdout):
                try:
                    pipe.close()
                except OSError:
                    pass
        self._proc, self._sel, self._buf, self._ready = None, None, b"", False
        self._started_once, self._spare = False, None


def _close(proc: subprocess.Popen, sel: selectors.BaseSelector, _buf: bytes = b"") -> None:
    """Kill and reap a worker process that never became the current one."""
    sel.close()
    if proc.poll() is None:
        proc.kill()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover
        pass
    for pipe in (proc.stdin, proc.stdout):
        try:
            pipe.close()
        except OSError:
            pass


_WORKER = _Worker()
atexit.register(_WORKER.close)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_WORKER.forget_after_fork)


def verify(gold: str, pred: str, *, timeout_s: float) -> bool:
    """Whether math-verify finds `pred` equivalent to `gold` (both bare answers) in `timeout_s`."""
    if timeout_s <= 0:
        return False
    return _WORKER.verify(gold, pred, timeout_s=timeout_s)


def start() -> None:
    """Start this process's worker now and wait for it (the first start is the slow one)."""
    _WORKER.start()


def worker_pid() -> int | None:
    """Process id of this process's worker, or None if none is running (for tests)."""
    return _WORKER.pid


# ------------------------------------------------------------------ inside the worker process

def _limit_memory() -> None:
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = MEMORY_LIMIT_BYTES if hard == resource.RLIM_INFINITY else min(MEMORY_LIMIT_BYTES, hard)
    if soft == resource.RLIM_INFINITY or soft > cap:
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))


def _check(parse, verify_fn, gold: str, pred: str) -> bool:
    try:
        gold_parsed = parse(f"\\boxed{{{gold}}}", parsing_timeout=None)
        pred_parsed = parse(f"\\boxed{{{pred}}}", parsing_timeout=None)
        if not gold_parsed or not pred_parsed:
            return False
        return bool(verify_fn(gold_parsed, pred_parsed, timeout_seconds=None))
    except Exception:  # noqa: BLE001 - RecursionError, MemoryError, sympy internals: all False
        return False


def _serve() -> None:
    """Worker main loop: answer `[gold, pred]` lines until stdin closes (the parent is gone)."""
    import logging
    import signal

    out = os.dup(1)
    os.dup2(2, 1)  # stray prints from libraries go to stderr, not into the reply channel
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business
    _limit_memory()
    logging.disable(logging.WARNING)  # math-verify warns that its own timeout is off: intended
    from math_verify import parse, verify as verify_fn

    _check(parse, verify_fn, "\\frac{1}{2}", "0.5")  # warm up the LaTeX parser
    os.write(out, b"ready\n")
    for line in sys.stdin.buffer:
        try:
            gold, pred = json.loads(line)
            ok = _check(parse, verify_fn, str(gold), str(pred))
        except ValueError:
            ok = False
        os.write(out, b"1\n" if ok else b"0\n")
