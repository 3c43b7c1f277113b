"""Head-to-head few-shot Meta-World (issue #33): does pre-training on plentiful actionless video beat LeRobot's
Diffusion Policy and ACT trained on the same few demos? Camera + 4-d proprioception only (agent_pos), 8 tasks from
Meta-World's easy / medium / hard groups, D demos per task, an actionless corpus of A = k x D episodes per task.

One directory per cell — (D, k, policy, seed) — skipped when complete (``done.json``), restarted from scratch when
a run left it half-written. Shared stages (demos per D, actionless corpus and pre-training per (D, k)) are cells of
their own. This file plans the grid (``--plan``: cells and estimated CPU time); the runner follows.

    python benchmarks/fewshot.py --plan            # the default grid and its CPU estimate
    python benchmarks/fewshot.py --plan --quick    # the <= 15-minute grid
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

TASKS = ("reach,drawer-close,window-open,"  # easy
         "coffee-push,sweep-into,hammer,"  # medium
         "push,pick-place")  # hard
POLICIES = ("vpdd", "diffusion", "act")  # vpdd with k = 0 is vidpolicy from scratch; k > 0 pre-trained
# rough CPU seconds on 2 cores, for --plan only: per demo episode collected, per optimizer step, per evaluated step
COST = {"collect_episode": 1.5, "tokenizer_step": 0.25, "pretrain_step": 1.1, "finetune_step": 0.5,
        "diffusion_step": 1.0, "act_step": 0.5, "rollout_step": 0.03}


@dataclass(frozen=True)
class Budget:
    demos: tuple[int, ...] = (5, 10)  # D: action-labelled demos per task
    multiples: tuple[int, ...] = (0, 1, 5, 20)  # k: actionless episodes per task = k x D
    seeds: tuple[int, ...] = (0, 1, 2)  # fine-tuning seeds of every learned policy
    tokenizer_steps: int = 600
    pretrain_steps: int = 4000
    train_steps: int = 2000  # fine-tuning / lerobot-train steps, equal across policies
    eval_episodes: int = 10  # per task, seeds from 1000 (the demos use 0..)
    max_steps: int = 500  # Meta-World's episode limit

    @classmethod
    def quick(cls) -> "Budget":
        return cls(demos=(2,), multiples=(0, 2), seeds=(0,), tokenizer_steps=60, pretrain_steps=60, train_steps=60,
                   eval_episodes=1, max_steps=60)


@dataclass(frozen=True)
class Cell:
    stage: str  # demos, actionless, pretrain, train (a policy), rollout
    demos: int
    multiple: int | None = None  # None: the stage does not depend on the actionless corpus
    policy: str | None = None
    seed: int | None = None

    @property
    def name(self) -> str:
        parts = [f"D{self.demos}"] + ([f"A{self.multiple}x"] if self.multiple is not None else [])
        parts += [p for p in (self.policy, f"seed{self.seed}" if self.seed is not None else None) if p]
        return "/".join(parts + [self.stage])


def grid(b: Budget, policies: tuple[str, ...] = POLICIES) -> list[Cell]:
    """Every cell in the order they can run (each after the cells it reads)."""
    cells: list[Cell] = []
    for d in b.demos:
        cells.append(Cell("demos", d))
        for k in (k for k in b.multiples if k > 0):
            cells += [Cell("actionless", d, k), Cell("pretrain", d, k)]
        for policy in policies:
            ks = b.multiples if policy == "vpdd" else (None,)  # only vidpolicy reads actionless video
            for k in ks:
                for s in b.seeds:
                    cells += [Cell("train", d, k, policy, s), Cell("rollout", d, k, policy, s)]
    return cells


def estimate_s(cell: Cell, b: Budget, n_tasks: int) -> float:
    """A rough CPU time for ``cell`` (see COST)."""
    if cell.stage == "demos":
        return COST["collect_episode"] * n_tasks * cell.demos
    if cell.stage == "actionless":
        return COST["collect_episode"] * n_tasks * cell.demos * cell.multiple
    if cell.stage == "pretrain":
        return COST["tokenizer_step"] * b.tokenizer_steps + COST["pretrain_step"] * b.pretrain_steps
    if cell.stage == "train":
        return COST[f"{'finetune' if cell.policy == 'vpdd' else cell.policy}_step"] * b.train_steps
    return COST["rollout_step"] * n_tasks * b.eval_episodes * b.max_steps * 0.6  # solved episodes end early


def is_done(root: Path, cell: Cell) -> bool:
    return (root / cell.name / "done.json").exists()


def claim(root: Path, cell: Cell) -> Path:
    """The cell's directory, empty: whatever a killed run left there is removed (a cell restarts cleanly)."""
    where = root / cell.name
    if where.exists():
        shutil.rmtree(where)
    where.mkdir(parents=True)
    return where


def finish(root: Path, cell: Cell, result: dict) -> None:
    """Mark the cell complete; written last, atomically, so a cell with ``done.json`` is whole."""
    tmp = root / cell.name / ".done.json.tmp"
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(root / cell.name / "done.json")


def plan_table(cells: list[Cell], b: Budget, n_tasks: int, root: Path | None = None) -> str:
    lines, total, left = [f"{'cell':<40} {'est. min':>8}  done"], 0.0, 0.0
    for c in cells:
        est, done = estimate_s(c, b, n_tasks), bool(root and is_done(root, c))
        total += est
        left += 0 if done else est
        lines.append(f"{c.name:<40} {est / 60:>8.1f}  {'yes' if done else ''}")
    lines.append(f"{len(cells)} cells, ~{total / 3600:.1f} CPU-hours in all, ~{left / 3600:.1f} left")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plan", action="store_true", help="print the grid with estimated CPU time and stop")
    ap.add_argument("--quick", action="store_true", help="the smallest grid (one seed, one D, tiny budgets)")
    ap.add_argument("--tasks", default=TASKS)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "out" / "fewshot_grid"))
    args = ap.parse_args()
    b = Budget.quick() if args.quick else Budget()
    tasks = args.tasks.split(",")
    print(plan_table(grid(b), b, len(tasks), Path(args.out)))
    if not args.plan:
        raise SystemExit("the runner is not written yet: --plan only")


if __name__ == "__main__":
    main()
