"""Serve a policy (and optionally its learned value) behind an OpenAI-compatible API.

Local, one process (uvicorn; no Ray needed):

    python -m launch.serve --policy runs/sft --value runs/oreo/value --host 127.0.0.1 --port 8000

Then any OpenAI client works; the method and budget go in extra fields:

    from openai import OpenAI
    client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="unused")
    client.completions.create(model="reasoner", prompt="Q: ...\\nA:\\n", max_tokens=64,
                              extra_body={"search": {"method": "beam", "beam_width": 3, "return_trace": True}})

Scale-out with Ray Serve (one replica per GPU; Ray Serve balances requests across them and
each replica batches its own):

    python -m launch.serve --policy ckpt --value ckpt_value --backend vllm --ray-serve \\
        --replicas 4 --num-gpus-per-replica 1 --host 0.0.0.0 --port 8000

It starts (or, under `ray job submit` / with RAY_ADDRESS, joins) a Ray cluster, deploys the
same FastAPI app (`launch.serve_app.build_app`) with `@serve.deployment` + `serve.ingress`,
and blocks until interrupted. Every replica loads its own policy and value model.

API key: `--api-key KEY` or the environment variable named by `--api-key-env`
(REASONER_API_KEY); without one the API is open (bind to 127.0.0.1 then).
Errors before serving (bad checkpoint path, bad option) print one line and exit 2.
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Sequence

__all__ = ["main", "ServeOptions", "build_engine", "ServeReplica", "deploy_ray_serve"]


@dataclass
class ServeOptions:
    """Everything a process (or a Ray Serve replica) needs to build the engine and app."""
    policy: str
    value: str | None = None
    backend: str = "hf"
    device: str = "auto"
    config: str | None = None
    overrides: list[str] = field(default_factory=list)
    serve: dict[str, Any] = field(default_factory=dict)     # ServeConfig fields
    api_key: str | None = None


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m launch.serve", description=__doc__.split("\n\n")[0],
                                 epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", required=True, help="policy HF checkpoint directory")
    ap.add_argument("--value", help="value-model directory (ValueModel.save_pretrained); enables beam")
    ap.add_argument("--backend", choices=["hf", "vllm"], default="hf", help="generation backend")
    ap.add_argument("--device", default="auto", help="hf backend device: auto, cpu, cuda, cuda:N")
    ap.add_argument("--host", default="127.0.0.1", help="bind address (default loopback)")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--model-name", default="reasoner", help="model id the API serves")
    ap.add_argument("--api-key", default=None, help="required bearer key (default: $REASONER_API_KEY, else none)")
    ap.add_argument("--api-key-env", default="REASONER_API_KEY", help="environment variable holding the key")
    ap.add_argument("--config", help="YAML preset: its generator, prompt and steps blocks are used")
    ap.add_argument("--max-model-len", type=int, default=None, help="context limit in tokens (generator.max_model_len)")
    ap.add_argument("--max-batch-size", type=int, default=64, help="choices per batch")
    ap.add_argument("--batch-wait-ms", type=float, default=5.0, help="how long a batch waits for company")
    ap.add_argument("--max-n", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=1024, help="cap on a request's max_tokens")
    ap.add_argument("--max-samples", type=int, default=64, help="cap on best_of_n samples")
    ap.add_argument("--max-beam-width", type=int, default=8)
    ap.add_argument("--max-simulations", type=int, default=64)
    ap.add_argument("--max-steps", type=int, default=32)
    ap.add_argument("--log-level", default="warning", help="uvicorn log level")
    ray = ap.add_argument_group("Ray Serve")
    ray.add_argument("--ray-serve", action="store_true", help="deploy with Ray Serve instead of one uvicorn process")
    ray.add_argument("--replicas", type=int, default=1)
    ray.add_argument("--num-gpus-per-replica", type=float, default=0.0)
    ray.add_argument("--num-cpus-per-replica", type=float, default=1.0)
    ap.add_argument("overrides", nargs="*", help="config overrides key=value (generator.*, prompt.*, steps.*)")
    return ap


def _options(args) -> ServeOptions:
    serve = {"model_name": args.model_name, "api_key_env": args.api_key_env, "max_batch_size": args.max_batch_size,
             "batch_wait_ms": args.batch_wait_ms, "max_n": args.max_n, "max_tokens": args.max_tokens,
             "max_samples": args.max_samples, "max_beam_width": args.max_beam_width,
             "max_simulations": args.max_simulations, "max_steps": args.max_steps}
    overrides = [f"generator.backend={args.backend}", f"generator.device={args.device}", *args.overrides]
    if args.max_model_len:
        overrides.append(f"generator.max_model_len={args.max_model_len}")
    key = args.api_key if args.api_key is not None else os.environ.get(args.api_key_env, "")
    return ServeOptions(policy=args.policy, value=args.value, backend=args.backend, device=args.device,
                        config=args.config, overrides=overrides, serve=serve, api_key=key)


def build_engine(opts: ServeOptions):
    """Load the policy (and value) and return (engine, ServeConfig). Runs in each replica."""
    from launch.config import load_config
    from launch.seeding import pin_threads, seed_everything
    from launch.serve_engine import ServeConfig, ServeEngine
    from launch.config import api_key_of
    from reasoner.loading import build_generator, load_tokenizer

    pin_threads()
    exp = load_config(opts.config, opts.overrides)
    seed_everything(exp.seed)
    cfg = ServeConfig(**opts.serve)
    generator = build_generator(exp.generator, opts.policy, api_key=api_key_of(exp.generator))
    tokenizer = load_tokenizer(opts.policy)   # the engine's own copy: used on the event loop thread
    value_fn = None
    if opts.value:
        from reasoner.loading import resolve_device
        from reasoner.value_model import ValueModel
        from search.evaluators import LearnedValue
        device = resolve_device(exp.generator.device)
        model = ValueModel.from_pretrained(opts.value, device=device,
                                           tokenizer=None if _has_tokenizer(opts.value) else load_tokenizer(opts.policy))
        value_fn = LearnedValue(model.eval())
    limit = getattr(generator, "max_len", exp.generator.max_model_len)
    engine = ServeEngine(generator, tokenizer, cfg, value_fn=value_fn, prompt=exp.prompt, step_format=exp.steps,
                         context_limit=limit)
    return engine, cfg


def _has_tokenizer(path: str) -> bool:
    return os.path.exists(os.path.join(path, "tokenizer_config.json"))


class ServeReplica:
    """A Ray Serve replica: builds its own engine; Serve asks it for the ASGI app at start."""

    def __init__(self, opts: ServeOptions):
        self.engine, self.cfg = build_engine(opts)
        self.api_key = opts.api_key

    def __serve_build_asgi_app__(self):
        from launch.serve_app import build_app
        return build_app(self.engine, self.cfg, api_key=self.api_key)


def deploy_ray_serve(opts: ServeOptions, *, host: str, port: int, replicas: int, num_gpus: float,
                     num_cpus: float, blocking: bool = True, app_name: str = "reasoner"):
    """Deploy `ServeReplica` x `replicas` behind Ray Serve's HTTP proxy on host:port.

    Starts a loopback-only local Ray cluster unless RAY_ADDRESS or a submitted job names one.
    Returns the deployment handle when not blocking (tests); blocks until Ctrl-C otherwise.
    """
    import ray
    from ray import serve
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not ray.is_initialized():
        if os.environ.get("RAY_ADDRESS") or os.environ.get("RAY_JOB_ID"):
            ray.init(address="auto")
        else:
            ray.init(include_dashboard=False, _node_ip_address="127.0.0.1", logging_level="WARNING")
    env = {k: os.environ.get(k, d) for k, d in (("OMP_NUM_THREADS", "1"), ("TOKENIZERS_PARALLELISM", "false"),
                                               ("HF_HUB_OFFLINE", "1"))}
    deployment = serve.deployment(serve.ingress()(ServeReplica), name="ServeReplica", num_replicas=replicas,
                                  ray_actor_options={"num_gpus": num_gpus, "num_cpus": num_cpus,
                                                     "runtime_env": {"env_vars": env}})
    serve.start(http_options={"host": host, "port": port})
    handle = serve.run(deployment.bind(opts), name=app_name, route_prefix="/", blocking=False)
    if not blocking:
        return handle
    print(f"serving {opts.serve.get('model_name')} with Ray Serve on http://{host}:{port}/v1 "
          f"({replicas} replica(s)); Ctrl-C stops", flush=True)
    try:
        import time
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        serve.shutdown()
        ray.shutdown()
    return None


def _serve_local(opts: ServeOptions, host: str, port: int, log_level: str) -> int:
    import uvicorn
    from launch.serve_app import build_app
    engine, cfg = build_engine(opts)
    app = build_app(engine, cfg, api_key=opts.api_key)
    print(f"serving {cfg.model_name} on http://{host}:{port}/v1 "
          f"(value model: {'yes' if engine.value_fn is not None else 'no'}; context {engine.context_limit})",
          flush=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    opts = _options(args)
    for name, path in (("--policy", opts.policy), ("--value", opts.value)):
        if path is not None and not os.path.isdir(path):
            print(f"error: {name} {path} is not a directory", file=sys.stderr)
            return 2
    try:
        if args.ray_serve:
            deploy_ray_serve(opts, host=args.host, port=args.port, replicas=args.replicas,
                             num_gpus=args.num_gpus_per_replica, num_cpus=args.num_cpus_per_replica)
            return 0
        return _serve_local(opts, args.host, args.port, args.log_level)
    except (ValueError, OSError, ImportError) as e:
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
