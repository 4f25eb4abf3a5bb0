"""Plain-text tables of a run: one per iteration, and the final iterations x methods table."""
from __future__ import annotations

__all__ = ["iteration_table", "final_table"]


def iteration_table(k: int, manifest: dict) -> str:
    """Eval results of iteration k, with its rollout and training facts."""
    lines = [f"== iteration {k} (policy v{manifest.get('policy_version', k)}) =="]
    lines.append(f"{'method':<16} {'accuracy':>9} {'n':>6} {'gen_tokens':>11} {'wall_s':>8}")
    for method, r in manifest.get("eval", {}).items():
        lines.append(f"{method:<16} {r['accuracy']:>9.3f} {r['n']:>6} {r['generated_tokens']:>11} {r['wall_s']:>8.1f}")
    ro = manifest.get("rollout")
    if ro:
        lines.append(f"rollout: {ro['problems']} problems, committed correct {ro['committed_correct']}, "
                     f"{ro['pairs']} pairs, {ro['trajectories']} trajectories ({ro['positive_trajectories']} correct), "
                     f"{ro['generated_tokens']} tokens, tree time {ro['tree_s']:.2f}s of {ro['wall_s']:.1f}s")
    for name, m in (manifest.get("train") or {}).items():
        if m:
            shown = {key: (round(v, 4) if isinstance(v, float) else v) for key, v in m.items()
                     if key in ("steps", "loss", "value_loss", "policy_loss", "accuracy", "margin", "seconds",
                                "pairs", "trajectories")}
            lines.append(f"train {name}: {shown}")
    return "\n".join(lines)


def final_table(summary: dict) -> str:
    """Rows = iterations (0 = starting policy), columns = eval methods: accuracy (generated tokens)."""
    its = summary.get("iterations", [])
    methods = []
    for it in its:
        methods += [m for m in it.get("eval", {}) if m not in methods]
    head = f"{'iteration':<12}" + "".join(f"{m:>22}" for m in methods)
    rows = [head, "-" * len(head)]
    for it in its:
        label = "0 (start)" if it["iteration"] == 0 else str(it["iteration"])
        cells = []
        for m in methods:
            r = it.get("eval", {}).get(m)
            cells.append(f"{'-':>22}" if r is None else f"{r['accuracy']:>10.3f} ({r['generated_tokens']:>8} tok)")
        rows.append(f"{label:<12}" + "".join(cells))
    return "\n".join(rows)
