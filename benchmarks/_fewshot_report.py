"""The head-to-head grid's report (benchmarks/fewshot.py): success per policy, task and seed, each policy against
vidpolicy pre-trained on the largest corpus episode by episode, and the plot of success against the corpus size."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from _common import cell_result
from fewshot import VARIANTS, Cell, is_done

BLIND = "blind replay"  # the summary's row for the grid's blind cell (see vidpolicy.envs.replay)


def paired(a: dict, b: dict) -> dict:
    """Two policies on the same episodes (key -> solved): episodes only a solved ("wins"), only b solved ("losses"),
    and the exact two-sided McNemar p-value (a binomial test on those discordant episodes)."""
    wins = sum(a[k] and not b[k] for k in a)
    losses = sum(b[k] and not a[k] for k in a)
    n = wins + losses
    p = min(1.0, 2 * sum(math.comb(n, i) for i in range(min(wins, losses) + 1)) / 2**n) if n else 1.0
    return {"wins": wins, "losses": losses, "p_value": p}


def difference(a: dict, b: dict, resamples: int = 10_000, seed: int = 0) -> dict:
    """Two policies on the same episodes, keyed (seed, task, episode) -> solved: a's success minus b's (the mean over
    (seed, task) clusters) and its 95% bootstrap interval over those clusters (resampled with replacement, percentile
    method), so that a task or a seed one policy happens to do well on widens the interval instead of deciding it."""
    clusters: dict[tuple, list[int]] = {}
    for k in a:
        clusters.setdefault(k[:2], []).append(int(a[k]) - int(b[k]))
    if not clusters:
        return {}
    means = np.array([sum(v) / len(v) for v in clusters.values()])
    draws = np.random.default_rng(seed).integers(len(means), size=(resamples, len(means)))
    lo, hi = np.quantile(means[draws].mean(axis=1), [0.025, 0.975])
    return {"difference": float(means.mean()), "ci95": [float(lo), float(hi)], "clusters": len(means)}


def label(cell: Cell) -> str:
    if cell.family != "vpdd":
        return cell.policy
    name = "vpdd scratch" if cell.multiple == 0 else f"vpdd A={cell.multiple}xD"
    return f"{name}, {VARIANTS[cell.variant][0]}" if cell.variant else name


def corpora(table: dict) -> list[int]:
    """The actionless corpus sizes k of the paper's vidpolicy rows ("vpdd A=kxD"), ascending."""
    return sorted(int(n[7:].split("x")[0]) for n in table if n.startswith("vpdd A=") and ", " not in n)


def magnitude(rows: list[dict]) -> list[float | None]:
    """Per action dimension, the mean over episodes of the policy's mean |action| over the expert's in the states
    it visited (`rollout`'s expert_magnitude); [] when no episode has it."""
    per_dim = list(zip(*[m for r in rows for m in r.get("expert_magnitude", []) if m]))
    return [(sum(v) / len(v) if (v := [x for x in d if x is not None]) else None) for d in per_dim]


def task_reports(result: dict) -> dict[str, dict]:
    """A rollout cell's report per task (its done.json without the bookkeeping: wall_s, commit, cpu, ...)."""
    return {t: v for t, v in result.items() if isinstance(v, dict)}


def outcomes(seeds: dict[int, dict]) -> dict[tuple, bool]:
    """Each episode of a policy's rollouts, keyed by (seed, task, episode): solved or not."""
    return {(s, t, i): step is not None for s, r in seeds.items() for t in r
            for i, step in enumerate(r[t]["success_steps"])}


def split_by_blind(scenes: dict[str, list[float]], seeds: dict[int, dict]) -> dict:
    """A policy's rollouts (seed -> task -> report), pooled over seeds: [solved, episodes] in the scenes some demo's
    replay solves ("blind") and in those none does ("not_blind")."""
    out = {"blind": [0, 0], "not_blind": [0, 0]}
    for (_, task, i), solved in outcomes(seeds).items():
        if i < len(scenes.get(task, [])):
            side = out["blind" if scenes[task][i] > 0 else "not_blind"]
            side[0] += solved
            side[1] += 1
    return out


def pooled(per_task: dict[str, float]) -> float:
    """A per-task rate pooled over tasks (each task has the same number of episodes)."""
    return sum(per_task.values()) / len(per_task)


def summarize(root: Path, cells: list[Cell]) -> dict:
    """Per D and policy: success per task (mean and spread over seeds) and pooled; each policy against vidpolicy
    pre-trained on the largest corpus, episode by episode (exact McNemar over tasks x seeds x episodes; the success
    difference with its bootstrap interval over tasks x seeds), and each other vidpolicy against vidpolicy from
    scratch (``vs_scratch``); where the blind cell is done, its replay (``BLIND``: per task, a random demo's success
    and the share of scenes some demo solves) and each policy's success split by it (``blind_split``)."""
    out: dict = {}
    for d in sorted({c.demos for c in cells if c.demos is not None}):
        runs: dict[str, dict[int, dict]] = {}
        commits: dict[str, set[str]] = {}  # the code each policy's rollouts ran (cells run across commits)
        machines: dict[str, set[str]] = {}  # and the processors (cells run across machines)
        for c in cells:
            if c.stage == "rollout" and c.demos == d and is_done(root, c):
                result = cell_result(root, c.name)
                runs.setdefault(label(c), {})[c.seed] = task_reports(result)
                commits.setdefault(label(c), set()).add(result.get("commit", "unknown"))
                machines.setdefault(label(c), set()).add(result.get("cpu", "unknown"))
        table = {}
        for name, seeds in runs.items():
            per_task = {t: [r[t]["successes"] / r[t]["episodes"] for r in seeds.values()] for t in next(
                iter(seeds.values()))}
            pooled = [sum(r[t]["successes"] for t in r) / sum(r[t]["episodes"] for t in r) for r in seeds.values()]
            table[name] = {"seeds": sorted(seeds), "mean": sum(pooled) / len(pooled), "min": min(pooled),
                           "max": max(pooled), "per_task": {t: {"mean": sum(v) / len(v), "min": min(v), "max": max(v)}
                                                            for t, v in per_task.items()},
                           "commits": sorted(commits[name]), "machines": sorted(machines[name])}
            if size := magnitude([r[t] for r in seeds.values() for t in r]):
                table[name]["expert_magnitude"] = size
        if is_done(root, blind := Cell("blind", d)):  # the floor: the demos replayed open loop, no camera
            scores = cell_result(root, blind.name)
            table[BLIND] = {k: scores[k] for k in ("replay", "best_demo")}
            for name, seeds in runs.items():
                table[name]["blind_split"] = split_by_blind(scores["scenes"], seeds)
        for c in cells:  # the video model's imagined future beside copying the present (the first seed)
            if c.stage == "imagine" and c.demos == d and is_done(root, c):
                table.setdefault(label(c), {})["imagination"] = cell_result(root, c.name)
        best = max((c.multiple for c in cells if c.policy == "vpdd" and c.multiple), default=None)
        # each policy against pre-trained on the largest corpus (wins: only pre-trained solved); each other vidpolicy
        # against scratch (wins: only it solved), the gap at its corpus size
        for ref, key, names, ref_wins in ((f"vpdd A={best}xD", "vs_pretrained", list(runs), True),
                                          ("vpdd scratch", "vs_scratch", [n for n in runs if n.startswith("vpdd ")],
                                           False)):
            if ref not in runs:
                continue
            for name in (n for n in names if n != ref):
                a, b = outcomes(runs[ref]), outcomes(runs[name])
                if common := sorted(a.keys() & b.keys()):
                    a, b = {k: a[k] for k in common}, {k: b[k] for k in common}
                    a, b = (a, b) if ref_wins else (b, a)
                    table[name][key] = {**paired(a, b), **difference(a, b)}
        out[f"D{d}"] = table
    return out


def against(root: Path, cells: list[Cell], ledger: Path) -> dict:
    """A grid with a changed budget (``fewshot.py --budget``) beside the default grid's committed cells of the same
    name: per rollout cell, episodes solved in each and the paired test (wins: only here); per imagine cell, the
    imagined clip's token accuracy in each."""
    out = {}
    for c in (c for c in cells if c.stage in ("rollout", "imagine") and is_done(root, c)):
        if not (path := ledger / f"{c.name}.json").exists() or (root / c.name).is_symlink():  # linked: the same run
            continue
        here, there = cell_result(root, c.name), json.loads(path.read_text())
        if c.stage == "imagine":
            out[c.name] = {"here": here["imagined"]["token_accuracy"], "default": there["imagined"]["token_accuracy"],
                           "copy_history": here["copy_history"]["token_accuracy"]}
            continue
        a, b = (outcomes({0: task_reports(r)}) for r in (here, there))
        common = a.keys() & b.keys()
        a, b = {k: a[k] for k in common}, {k: b[k] for k in common}
        out[c.name] = {"here": sum(a.values()), "default": sum(b.values()), "episodes": len(common), **paired(a, b),
                       **difference(a, b)}
    return out


def seed_notes(points: list[tuple[int, dict]]) -> list[tuple[int, float, str]]:
    """The curve's points on fewer seeds than the most any has, as (x, success %, "n seeds") labels."""
    most = max((len(r["seeds"]) for _, r in points), default=0)
    return [(x, 100 * r["mean"], f"{len(r['seeds'])} seed{'s' * (len(r['seeds']) > 1)}") for x, r in points
            if len(r["seeds"]) < most]


def plot(summary: dict, path: Path, multiples: tuple[int, ...] = (0, 1, 5, 20)) -> dict:
    """Success (pooled over tasks) against the actionless corpus size, seed range as a band; baselines flat, their
    seed range a band too. One panel per demo count with a rollout done. Returns each panel's baseline bands,
    ``{D: {label: (min, mean, max)}}`` in percent."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = {d: t for d, t in summary.items() if any("mean" in v for v in t.values())} or summary
    fig, axes = plt.subplots(1, len(summary), figsize=(5 * len(summary), 3.5), squeeze=False)
    bands: dict = {}
    for ax, (d, table) in zip(axes[0], summary.items()):
        ks = corpora(table)
        xs = [0] + ks
        rows = [table.get("vpdd scratch")] + [table[f"vpdd A={k}xD"] for k in ks]
        pts = [(x, r) for x, r in zip(xs, rows) if r and "mean" in r]
        ax.plot([x for x, _ in pts], [100 * r["mean"] for _, r in pts], "o-", label="vidpolicy")
        ax.fill_between([x for x, _ in pts], [100 * r["min"] for _, r in pts], [100 * r["max"] for _, r in pts],
                        alpha=0.2)
        for x, y, note in seed_notes(pts):
            ax.annotate(note, (x, y), textcoords="offset points", xytext=(0, -14), ha="center", fontsize=8)
        for name, label, color in (("diffusion", "Diffusion Policy", "C1"), ("act", "ACT", "C2")):
            if "mean" in (r := table.get(name, {})):
                lo, mid, hi = (100 * r[k] for k in ("min", "mean", "max"))
                ax.axhline(mid, ls="--", label=label, color=color)
                ax.axhspan(lo, hi, color=color, alpha=0.1, lw=0)
                bands.setdefault(d, {})[label] = (lo, mid, hi)
        if BLIND in table:
            blind = 100 * pooled(table[BLIND]["replay"])
            ax.axhline(blind, ls=":", color="gray", label="a demo replayed blind")
            bands.setdefault(d, {})["blind replay"] = (blind, blind, blind)
        ax.set(title=f"{d[1:]} demos per task", xlabel="actionless episodes per task / demos per task",
               ylabel="success %", ylim=(0, 100), xlim=(-1, max(multiples) + 1), xticks=list(multiples))
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return bands
