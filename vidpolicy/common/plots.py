"""PNG plots a person looks at: loss curves from a run's metrics log, success bars, contact sheets."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vidpolicy.common.io import atomic_path, read_jsonl


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def read_metrics(run_dir: str | Path) -> list[dict]:
    rows: dict[int, dict] = {}
    for row in read_jsonl(Path(run_dir) / "logs" / "metrics.jsonl"):
        rows[int(row["step"])] = row  # a resumed run rewrites steps: keep the latest
    return [rows[k] for k in sorted(rows)]


def plot_losses(run_dir: str | Path, keys: tuple[str, ...] = (), out: str | Path | None = None) -> Path | None:
    rows = read_metrics(run_dir)
    if not rows:
        return None
    keys = keys or tuple(k for k in rows[-1] if "loss" in k)
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3), squeeze=False)
    for ax, key in zip(axes[0], keys):
        pts = [(r["step"], r[key]) for r in rows if key in r]
        if pts:
            ax.plot(*zip(*pts))
        ax.set_title(key)
        ax.set_xlabel("step")
        if pts and min(v for _, v in pts) > 0:
            ax.set_yscale("log")
    fig.tight_layout()
    out = Path(out or Path(run_dir) / "loss.png")
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return out


def plot_success(rates: dict[str, float], out: str | Path, title: str = "success rate") -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(4, 0.9 * len(rates) + 1), 3))
    ax.bar(range(len(rates)), [100 * v for v in rates.values()], color="tab:green")
    ax.set_xticks(range(len(rates)), list(rates), rotation=30, ha="right")
    ax.set_ylim(0, 100)
    ax.set_ylabel("%")
    ax.set_title(title)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return Path(out)


def contact_sheet(rows: dict[str, np.ndarray], out: str | Path) -> Path:
    """One row of frames per named ``(t, h, w, 3)`` uint8 array (e.g. history | imagined | truth)."""
    plt = _pyplot()
    n = max(v.shape[0] for v in rows.values())
    fig, axes = plt.subplots(len(rows), n, figsize=(1.6 * n, 1.7 * len(rows)), squeeze=False)
    for r, (name, frames) in enumerate(rows.items()):
        for c in range(n):
            ax = axes[r][c]
            ax.axis("off")
            if c < frames.shape[0]:
                ax.imshow(frames[c])
            if c == 0:
                ax.set_title(name, fontsize=8, loc="left")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return Path(out)
