"""Load test of the inference API: a bounded concurrent burst vs one-at-a-time requests (loopback only).

    python benchmarks/serve_load.py --quick                    # starts its own server on the tiny policy (temp output)
    python benchmarks/serve_load.py --quick --out benchmarks/results/serve_load.json   # how the committed file was made
    python benchmarks/serve_load.py --url http://127.0.0.1:8000 --requests 200 --concurrency 16

Sends `--requests` completions (held-out arithmetic questions in the plain template, greedy by
default) with at most `--concurrency` in flight to a running `python -m launch.serve`, then
`--serial` requests one at a time. The server batches concurrent requests into shared generator
calls, so the burst's requests/s over the serial requests/s is the batching gain. `--quick`
starts `python -m launch.serve --policy tests/data/tiny_arith_policy` on a free 127.0.0.1 port,
runs the default burst (200 requests, 16 concurrent, 20 serial) and stops the server.

Only loopback servers (127.0.0.1, localhost, ::1) are accepted: this is a benchmark, not a load
generator for other people's machines.

Mixed load (`--mixed`, on by default with `--quick`): `--mixed-requests` greedy requests from
`--greedy-clients` closed-loop clients, first alone, then while `--mcts-clients` clients keep
sending MCTS requests (`--mcts-simulations` simulations per decision, the learned value; the
`--quick` server gets a value model built from the policy). Greedy latency percentiles with and
without the search traffic go to `mixed` (target: greedy p99 under mixed load <= 2x alone; the
server interleaves the searches' model calls with the greedy ones, `launch.serve_scheduler`).

Writes benchmarks/results/serve_load.json with top-level keys `requests`, `errors`,
`requests_per_s`, `p50_ms`, `p99_ms`, `serial_requests_per_s` (targets: zero errors, every
request answered, requests_per_s > serial_requests_per_s), plus the batching gain, the server's
batch statistics and the settings, and `mixed`: {`greedy_p50_ms_alone`, `greedy_p99_ms_alone`,
`greedy_p50_ms_mixed`, `greedy_p99_ms_mixed`, `errors`, ...}.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results" / "serve_load.json"
from benchmarks.results_path import results_path  # noqa: E402
DEFAULT_MODEL = ROOT / "tests" / "data" / "tiny_arith_policy"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _prompts(n: int) -> tuple[list[str], list[str]]:
    """(prompts, reference answers) of n held-out arithmetic problems."""
    from envs.arith import load_arith
    from reasoner.templates import PromptConfig, render_prompt
    problems = load_arith("test", n)
    return [render_prompt(p.question, PromptConfig()) for p in problems], [p.answer for p in problems]


def _body(args, prompt: str) -> dict:
    body = {"model": args.model, "prompt": prompt, "max_tokens": args.max_tokens}
    if args.method != "greedy":
        body["search"] = {"method": args.method}
    return body


async def _one(client, url: str, body: dict, sem: asyncio.Semaphore | None) -> tuple[float, int, str]:
    """(latency ms, status, text) of one request; status 0 for a transport failure."""
    async def send():
        t0 = time.perf_counter()
        try:
            r = await client.post(f"{url}/v1/completions", json=body)
            text = r.json()["choices"][0]["text"] if r.status_code == 200 else ""
            return (time.perf_counter() - t0) * 1000, r.status_code, text
        except Exception:  # counted as an error, never dropped
            return (time.perf_counter() - t0) * 1000, 0, ""
    if sem is None:
        return await send()
    async with sem:
        return await send()


async def _burst(args, url: str, prompts: list[str], headers: dict) -> tuple[float, list[tuple[float, int, str]]]:
    import httpx
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    sem = asyncio.Semaphore(args.concurrency)
    async with httpx.AsyncClient(timeout=args.timeout, limits=limits, headers=headers) as client:
        t0 = time.perf_counter()
        out = await asyncio.gather(*(_one(client, url, _body(args, p), sem) for p in prompts))
        return time.perf_counter() - t0, out


async def _serial(args, url: str, prompts: list[str], headers: dict) -> float:
    import httpx
    async with httpx.AsyncClient(timeout=args.timeout, headers=headers) as client:
        t0 = time.perf_counter()
        for p in prompts:
            await _one(client, url, _body(args, p), None)
        return time.perf_counter() - t0


def _percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = min(len(xs) - 1, max(0, round(q / 100 * (len(xs) - 1))))
    return xs[k]


def _health(url: str, headers: dict) -> dict:
    import httpx
    return httpx.get(f"{url}/health", headers=headers, timeout=10).json()


def run(args, url: str) -> dict:
    from envs.grading import grade
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    prompts, answers = _prompts(args.requests)
    asyncio.run(_serial(args, url, prompts[:2], headers))        # warm-up (not timed)
    before = _health(url, headers)["stats"]
    wall, out = asyncio.run(_burst(args, url, prompts, headers))
    after = _health(url, headers)["stats"]
    serial_wall = asyncio.run(_serial(args, url, prompts[:args.serial], headers))
    ok = [o for o in out if o[1] == 200]
    batches = after["batches"] - before["batches"]
    result = {
        "requests": len(out),
        "errors": len(out) - len(ok),
        "requests_per_s": round(len(ok) / wall, 2),
        "p50_ms": round(_percentile([o[0] for o in ok], 50), 1),
        "p99_ms": round(_percentile([o[0] for o in ok], 99), 1),
        "serial_requests_per_s": round(args.serial / serial_wall, 2),
        "answered": len(ok),
        "status_counts": {str(s): sum(o[1] == s for o in out) for s in sorted({o[1] for o in out})},
        "accuracy": round(sum(grade(o[2], a) for o, a in zip(out, answers)) / len(out), 4),
        "server_batches": batches,
        "mean_requests_per_batch": round((after["requests"] - before["requests"]) / max(batches, 1), 2),
        "largest_batch": after["largest_batch"],
        "wall_seconds": round(wall, 3),
        "config": {"url": url, "method": args.method, "max_tokens": args.max_tokens, "concurrency": args.concurrency,
                   "serial_requests": args.serial, "quick": args.quick,
                   "model": str(args.policy) if args.quick else args.model},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "note": "CPU only; machine shared with other jobs, so absolute rates are noisy"},
    }
    result["batching_gain"] = round(result["requests_per_s"] / max(result["serial_requests_per_s"], 1e-9), 2)
    if args.mixed:
        result["mixed"] = asyncio.run(_mixed(args, url, prompts[:args.mixed_requests], headers))
        m = result["mixed"]
        m["p99_ratio"] = round(m["greedy_p99_ms_mixed"] / max(m["greedy_p99_ms_alone"], 1e-9), 2)
    return result


async def _closed_loop(client, url: str, bodies: list[dict], clients: int) -> list[tuple[float, int, str]]:
    """`clients` clients, each sending its share of `bodies` one after another."""
    async def worker(mine):
        return [await _one(client, url, b, None) for b in mine]
    parts = await asyncio.gather(*(worker(bodies[i::clients]) for i in range(clients)))
    return [o for part in parts for o in part]


async def _mixed(args, url: str, prompts: list[str], headers: dict) -> dict:
    """Greedy latencies alone, then with MCTS clients running; errors over both phases."""
    import httpx
    greedy = [{"model": args.model, "prompt": p, "max_tokens": args.max_tokens} for p in prompts]
    mcts_body = {"model": args.model, "prompt": prompts[0], "max_tokens": args.mcts_step_tokens,
                 "search": {"method": "mcts", "simulations": args.mcts_simulations, "max_steps": args.mcts_steps}}
    async with httpx.AsyncClient(timeout=args.timeout, headers=headers) as client:
        alone = await _closed_loop(client, url, greedy, args.greedy_clients)
        stop, mcts_out = asyncio.Event(), []

        async def searcher(k: int):
            await asyncio.sleep(0.05 * k)
            while not stop.is_set():
                mcts_out.append(await _one(client, url, {**mcts_body, "prompt": prompts[k % len(prompts)]}, None))
        searchers = [asyncio.create_task(searcher(k)) for k in range(args.mcts_clients)]
        await asyncio.sleep(1.0)   # the searches are under way before the greedy clients start
        t0 = time.perf_counter()
        mixed = await _closed_loop(client, url, greedy, args.greedy_clients)
        mixed_wall = time.perf_counter() - t0
        stop.set()
        await asyncio.gather(*searchers)
    ms = lambda out, q: round(_percentile([o[0] for o in out if o[1] == 200], q), 1)  # noqa: E731
    return {"greedy_p50_ms_alone": ms(alone, 50), "greedy_p99_ms_alone": ms(alone, 99),
            "greedy_p50_ms_mixed": ms(mixed, 50), "greedy_p99_ms_mixed": ms(mixed, 99),
            "errors": sum(o[1] != 200 for o in alone + mixed + mcts_out),
            "greedy_requests": len(greedy), "greedy_clients": args.greedy_clients,
            "mcts_requests_done": sum(o[1] == 200 for o in mcts_out), "mcts_clients": args.mcts_clients,
            "mcts_p50_ms": ms(mcts_out, 50), "mcts_simulations": args.mcts_simulations,
            "mcts_max_steps": args.mcts_steps, "mcts_step_tokens": args.mcts_step_tokens,
            "mixed_wall_seconds": round(mixed_wall, 2)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _own_server(args):
    """`python -m launch.serve` on the tiny policy at a free loopback port; stopped on exit."""
    import httpx
    import tempfile
    port = _free_port()
    cmd = [sys.executable, "-m", "launch.serve", "--policy", str(args.policy), "--device", "cpu",
           "--host", "127.0.0.1", "--port", str(port), "--model-name", args.model, "--api-key", ""]
    tmp = tempfile.TemporaryDirectory(prefix="serve_load_value")
    if args.mixed:  # MCTS needs a value model: the policy's body with a zero head (a fresh critic)
        from reasoner.value_model import ValueModel
        ValueModel.from_policy(str(args.policy)).save_pretrained(tmp.name)
        cmd += ["--value", tmp.name]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not become healthy in 120 s")
            time.sleep(0.25)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        tmp.cleanup()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="running server, e.g. http://127.0.0.1:8000 (loopback only)")
    ap.add_argument("--quick", action="store_true", help="start and stop an own server on the tiny policy")
    ap.add_argument("--policy", default=DEFAULT_MODEL, help="policy for --quick")
    ap.add_argument("--model", default="reasoner", help="model id the server serves")
    ap.add_argument("--api-key", default=os.environ.get("REASONER_API_KEY", ""))
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--serial", type=int, default=20, help="requests sent one at a time for the serial rate")
    ap.add_argument("--method", default="greedy", help="greedy | sample | best_of_n | beam | mcts")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--timeout", type=float, default=300.0, help="per-request timeout, seconds")
    ap.add_argument("--mixed", action=argparse.BooleanOptionalAction, default=None,
                    help="also run the mixed greedy + MCTS load (default: on with --quick)")
    ap.add_argument("--mixed-requests", type=int, default=96, help="greedy requests per mixed-load phase")
    ap.add_argument("--greedy-clients", type=int, default=4, help="closed-loop greedy clients")
    ap.add_argument("--mcts-clients", type=int, default=2, help="closed-loop MCTS clients during the mixed phase")
    ap.add_argument("--mcts-simulations", type=int, default=64)
    ap.add_argument("--mcts-steps", type=int, default=8, help="max steps of an MCTS response")
    ap.add_argument("--mcts-step-tokens", type=int, default=24, help="max tokens per MCTS step")
    ap.add_argument("--out", default=None,
                    help="JSON output (default: results/serve_load.json; --quick: a temp file)")
    args = ap.parse_args(argv)
    if args.mixed is None:
        args.mixed = args.quick
    if not 1 <= args.requests <= 10_000 or not 1 <= args.concurrency <= 256 or not 1 <= args.serial <= args.requests:
        ap.error("need 1 <= requests <= 10000, 1 <= concurrency <= 256, 1 <= serial <= requests")
    if args.quick:
        with _own_server(args) as url:
            result = run(args, url)
    else:
        if not args.url:
            ap.error("give --url of a running server or --quick")
        if urlparse(args.url).hostname not in LOOPBACK:
            ap.error(f"only loopback servers are allowed ({sorted(LOOPBACK)}), got {args.url}")
        result = run(args, args.url.rstrip("/"))
    out = results_path("serve_load", quick=args.quick, out=args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    keys = ("requests", "errors", "requests_per_s", "p50_ms", "p99_ms", "serial_requests_per_s", "batching_gain")
    print(json.dumps({k: result[k] for k in keys}))
    return 0 if result["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
