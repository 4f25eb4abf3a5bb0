"""The main job with one injected fault: the first rollout call kills its worker process.

    python tests/support/fault_iterate.py MARKER [launch/iterate.py arguments ...]

Runs `launch.iterate.main` with the rollout actors built from a `PolicyWorker` subclass whose
`rollout` writes MARKER and exits hard (`os._exit`, as if the process were killed) when MARKER
does not exist yet; Ray restarts the actor (`workers.rollout.max_restarts`) and retries the
chunk. The subclass is defined here, in the script run as `__main__`, so Ray ships it to the
workers by value; production worker code carries no hook.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def exit_once_worker(marker: str):
    """A `PolicyWorker` whose first rollout of the job (no MARKER yet) kills its process."""
    from launch.workers import PolicyWorker

    class ExitOncePolicyWorker(PolicyWorker):
        def rollout(self, *args, **kwargs):
            if not os.path.exists(marker):
                Path(marker).write_text(f"killed pid {os.getpid()} in rollout\n")
                os._exit(17)
            return super().rollout(*args, **kwargs)

    return ExitOncePolicyWorker


def main(argv: list[str]) -> int:
    import ray

    import launch.actors
    from launch import iterate
    launch.actors.PolicyWorkerActor = ray.remote(exit_once_worker(argv[0]))
    return iterate.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
