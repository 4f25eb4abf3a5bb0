"""PNG plots of a run's summary: accuracy per iteration per method, and accuracy vs generated tokens."""
from __future__ import annotations

from pathlib import Path

__all__ = ["plot_summary", "plot_oni"]


def plot_summary(summary: dict, out_dir: Path) -> list[Path]:
    """Write `accuracy_per_iteration.png` and `accuracy_vs_tokens.png` into `out_dir`."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    out_dir.mkdir(parents=True, exist_ok=True)
    its = summary.get("iterations", [])
    methods = sorted({m for it in its for m in it.get("eval", {})})
    paths = []

    fig, ax = plt.subplots(figsize=(6, 4))
    for m in methods:
        xs = [it["iteration"] for it in its if m in it["eval"]]
        ys = [it["eval"][m]["accuracy"] for it in its if m in it["eval"]]
        ax.plot(xs, ys, marker="o", label=m)
    ax.set_xlabel("iteration (0 = starting policy)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    paths.append(_finish(plt, fig, ax, "Held-out accuracy per iteration", out_dir / "accuracy_per_iteration.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    for m in methods:
        pts = [(it["eval"][m]["generated_tokens"], it["eval"][m]["accuracy"], it["iteration"])
               for it in its if m in it["eval"]]
        if not pts:
            continue
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], label=m)
        for x, y, k in pts:
            ax.annotate(str(k), (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("generated tokens for the evaluation set (log)")
    paths.append(_finish(plt, fig, ax, "Accuracy vs generation budget (labels: iteration)",
                         out_dir / "accuracy_vs_tokens.png"))
    return paths


def _finish(plt, fig, ax, title: str, path: Path) -> Path:
    """Accuracy axis, title, grid, legend (when anything was drawn); save as PNG and close."""
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_oni(summary: dict, out_dir: Path) -> Path:
    """Write `oni_returns.png`: extrinsic and intrinsic return, and label coverage, vs env steps."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    pts = [it["metrics"] for it in summary.get("iterations", []) if it.get("metrics")]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    xs = [m["env_steps"] for m in pts]
    ax.plot(xs, [m["extrinsic_return"] for m in pts], marker="o", label="extrinsic (env) return")
    ax.plot(xs, [m["intrinsic_return"] for m in pts], marker="s", label="intrinsic return")
    ax.set_xlabel("env steps")
    ax.set_ylabel("episode return")
    ax.set_title("Agent returns")
    ax.grid(alpha=0.3)
    ax.legend()
    ax2.plot(xs, [m["label_coverage"] for m in pts], marker="o", label="label coverage of trained steps")
    ax2.plot(xs, [m["labelled_within_10s"] for m in pts], marker="s", label="messages labelled within 10 s")
    ax2.set_xlabel("env steps")
    ax2.set_ylim(-0.05, 1.05)
    ax2.set_title("Labels")
    ax2.grid(alpha=0.3)
    ax2.legend()
    fig.tight_layout()
    path = out_dir / "oni_returns.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
