"""Head-to-head few-shot Meta-World (issue #33): does pre-training on plentiful actionless video beat LeRobot's
Diffusion Policy and ACT trained on the same few demos? Camera + 4-d proprioception only (agent_pos), 8 tasks from
Meta-World's easy / medium / hard groups, D demos per task, an actionless corpus of A = k x D episodes per task,
pre-trained on (k > 0) with episodes of every other Meta-World task and ../shared/data/human, all clips alike.

One directory per cell — (D, k, policy, seed) — skipped when complete (``done.json``); a cell a killed run
left half-written resumes where its command does (collecting, vidpolicy training, rollouts), else restarts.
The results of the leaf cells (rollouts, imagination scores) are copied into a committed ledger
(benchmarks/results/fewshot/default: cells/, and the settings that made them), which a fresh checkout restores:
only what is missing runs again.
Shared stages (demos per D, actionless corpus and pre-training per (D, k)) are cells of their own; so is each D's
floor (``blind``: its demos' actions replayed open loop in the evaluation scenes, no observation read). Every policy
is scored by ``vidpolicy rollout`` in the fast view with the 4-d state, on seeds 1000+ (the demos use 0.., the
actionless corpus 500..). vidpolicy with k = 0 is the from-scratch baseline: its tokenizer and
video model never see actionless video.

    python benchmarks/fewshot.py --plan            # the default grid and its CPU estimate
    python benchmarks/fewshot.py --quick           # the <= 15-minute grid, run
    python benchmarks/fewshot.py                   # the default grid (many CPU-hours: rerun to resume)
    python benchmarks/fewshot.py --only 'D5/A20x/vpdd/seed0/*'   # these cells and what they read, first
    python benchmarks/fewshot.py --budget pretrain_steps=16000 --only 'D10/A20x/vpdd/seed0/*'   # a grid beside it

A grid with a changed budget (on the default tasks and corpus) reads the default grid's finished cells that no
changed field reaches (the demos and corpora, or the pre-training when only fine-tuning changes) through links,
instead of computing them again.

Several processes can share the grid, each taking the next ready cell no other holds: one per core (with
OMP_NUM_THREADS=1) keeps every core busy, the single-threaded simulator's rollouts included.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, replace
from dataclasses import fields as fields_of
from fnmatch import fnmatch
from pathlib import Path

from vidpolicy.envs.metaworld import SCENES

from _common import (cell_done, claim_cell, first_sentence, open_ledger, pending, quiet, record_ledger, run_cells,
                     share_cells)

TASKS = ("reach,drawer-close,window-open,"  # easy
         "coffee-push,sweep-into,hammer,"  # medium
         "push,pick-place")  # hard
POLICIES = ("vpdd", "diffusion", "act")  # vpdd with k = 0 is vidpolicy from scratch; k > 0 pre-trained
LEAVES = ("rollout", "imagine", "blind")  # the cells whose results are the grid's; every other only feeds them
LEDGER = Path(__file__).resolve().parent / "results" / "fewshot" / "default"  # the leaves' results, committed
HELDOUT = 2  # expert episodes per task at the evaluation seeds (the imagine cells' data)
# vidpolicy beside the paper's recipe (policy "vpdd-NAME"): its label and what it changes in `finetune`. Each runs
# from scratch and on the largest corpus, unless it trains the video model (from scratch, the video model trains)
VARIANTS = {"tuned": ("video model trained", {"train_video": True}),  # pre-trained init, then trained as scratch
            "history": ("act on history", {"act_on": "history"})}  # no imagining: features of the present


@dataclass(frozen=True)
class Budget:
    demos: tuple[int, ...] = (5, 10)  # D: action-labelled demos per task
    multiples: tuple[int, ...] = (0, 1, 5, 20)  # k: actionless episodes per task = k x D
    seeds: tuple[int, ...] = (0, 1, 2)  # fine-tuning seeds of every learned policy
    other_episodes: int = 5  # actionless episodes of each Meta-World task outside --tasks (pre-training, k > 0)
    other_tasks: int | None = None  # how many of those tasks (the first in MT50's order; None: all)
    variants: tuple[str, ...] = tuple(VARIANTS)  # vidpolicy's other recipes run too (see VARIANTS)
    variant_seeds: int = 1  # how many of the seeds the variants run (diagnostics; the four policies run every seed)
    tokenizer_steps: int = 600
    pretrain_steps: int = 4000
    train_steps: int = 2000  # fine-tuning / lerobot-train steps, equal across policies
    eval_episodes: int = 10  # per task, seeds from 1000 (the demos use 0..)
    max_steps: int = 500  # Meta-World's episode limit
    imagine_samples: int = 96  # held-out clips each imagine cell scores
    small: bool = False  # model sizes of `vidpolicy demo --quick` (else of `vidpolicy demo`)

    @classmethod
    def quick(cls) -> "Budget":
        return cls(demos=(2,), multiples=(0, 2), seeds=(0,), tokenizer_steps=60, pretrain_steps=60, train_steps=60,
                   eval_episodes=1, max_steps=60, imagine_samples=16, small=True, variants=(),
                   other_episodes=1, other_tasks=4)

    @property
    def sizes(self) -> dict:
        from vidpolicy.demo import SIZES

        return SIZES[self.small]


@dataclass(frozen=True)
class Cell:
    stage: str  # demos, blind, actionless, others, pretrain, train (a policy), rollout, heldout, imagine
    demos: int | None = None  # None: the stage does not depend on D (others)
    multiple: int | None = None  # None: the stage does not depend on the actionless corpus
    policy: str | None = None  # vpdd, diffusion, act, or vpdd-NAME: vidpolicy's variant NAME (see VARIANTS)
    seed: int | None = None

    @property
    def family(self) -> str | None:
        return self.policy and self.policy.split("-")[0]

    @property
    def variant(self) -> str | None:
        return (self.policy or "").partition("-")[2] or None

    @property
    def name(self) -> str:
        parts = [f"D{d}" for d in (self.demos,) if d is not None]
        parts += [f"A{self.multiple}x"] if self.multiple is not None else []
        parts += [p for p in (self.policy, f"seed{self.seed}" if self.seed is not None else None) if p]
        return "/".join(parts + [self.stage])


def grid(b: Budget, policies: tuple[str, ...] = POLICIES) -> list[Cell]:
    """Every cell in the order they can run (each after the cells it reads), the decisive comparison first: for each
    D, the first seed of every policy that needs no large corpus (vidpolicy from scratch, the baselines), then
    vidpolicy on the largest corpus, then the other seeds of those four, then vidpolicy's variants (diagnostics, on
    ``variant_seeds`` seeds); last the corpus sizes in between, which draw the curve."""
    lo, hi = (min(b.multiples), max(b.multiples)) if "vpdd" in policies else (None, None)
    middle = [k for k in b.multiples if k not in (lo, hi)] if "vpdd" in policies else []
    cheap = [(p, lo if p == "vpdd" else None) for p in policies]
    big = [("vpdd", hi)] if hi != lo else []

    def shared(d: int, ks) -> list[Cell]:
        return [c for k in ks for c in ([Cell("actionless", d, k)] if k else []) + [Cell("pretrain", d, k)]]

    def runs(d: int, pairs, seeds) -> list[Cell]:
        return [c for s in seeds for p, k in pairs for c in (Cell("train", d, k, p, s), Cell("rollout", d, k, p, s))]

    def imagine(d: int, ks) -> list[Cell]:  # the first seed's video model against copying the present
        return [Cell("imagine", d, k, "vpdd", b.seeds[0]) for k in ks]

    first, rest = b.seeds[:1], b.seeds[1:]
    ends = [k for k in dict.fromkeys((lo, hi)) if k is not None]
    variants = [(f"vpdd-{v}", k) for v in b.variants for k in ends if k or "train_video" not in VARIANTS[v][1]]
    cells = [c for d in b.demos for c in [
        Cell("demos", d), Cell("blind", d), *shared(d, [lo] if lo is not None else []), *runs(d, cheap, first),
        *shared(d, [k for k in (hi,) if big]), *runs(d, big, first), *([Cell("heldout", d)] if ends else []),
        *imagine(d, ends), *runs(d, cheap + big, rest), *runs(d, variants, b.seeds[:b.variant_seeds])]]
    cells += [c for d in b.demos for c in [*shared(d, middle), *runs(d, [("vpdd", k) for k in middle], b.seeds),
                                           *imagine(d, middle)]]
    first = next((c for c in cells if c.stage == "actionless"), None)  # the other tasks: before the first corpus
    return [o for c in cells for o in ([Cell("others")] if c is first else []) + [c]]


def needs(cell: Cell) -> list[Cell]:
    """The cells whose outputs ``cell`` reads."""
    d, k = cell.demos, cell.multiple
    if cell.stage == "pretrain":
        return [Cell("demos", d)] + ([Cell("actionless", d, k), Cell("others")] if k else [])
    if cell.stage == "blind":
        return [Cell("demos", d)]
    if cell.stage == "train":
        return [Cell("demos", d)] + ([Cell("pretrain", d, k)] if cell.family == "vpdd" else [])
    if cell.stage in ("rollout", "imagine"):
        own = [Cell("train", d, k, cell.policy, cell.seed)]
        return own + ([Cell("heldout", d)] if cell.stage == "imagine" else [])
    return []  # demos, actionless, others, heldout: collected from the simulator


def select(cells: list[Cell], root: Path, patterns: tuple[str, ...] = ()) -> list[Cell]:
    """The cells still to run, in grid order: those named by ``patterns`` (globs over cell names; none: every leaf
    cell) that are not done, and every cell they read that is not done, transitively."""
    targets = [c for c in cells if any(fnmatch(c.name, p) for p in patterns)] if patterns else [
        c for c in cells if c.stage in LEAVES]
    by_name = {c.name: c for c in cells}
    return [by_name[n] for n in pending(root, list(by_name), [c.name for c in targets],
                                        lambda n: [d.name for d in needs(by_name[n])])]


def is_done(root: Path, cell: Cell) -> bool:
    return cell_done(root, cell.name)


def claim(root: Path, cell: Cell) -> Path:
    """The cell's directory. A cell whose command resumes keeps what a killed run left (`collect` adds the missing
    episodes, every trainer resumes from its checkpoints, `rollout` after its last journaled episode); an imagine
    cell restarts empty."""
    return claim_cell(root, cell.name, keep=cell.stage != "imagine")


def with_budget(b: Budget, pairs: list[str]) -> tuple[Budget, str]:
    """``b`` with KEY=VALUE changes to its numeric fields, and the suffix that names the grid they make (its own
    directory beside the default one, e.g. ``default-pretrain_steps16000``; "" when nothing changes)."""
    numeric = {f.name: type(getattr(b, f.name)) for f in fields_of(Budget) if type(getattr(b, f.name)) in (int, float)}
    changes: dict = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in numeric:
            raise SystemExit(f"--budget {pair}: expected KEY=VALUE, KEY one of {', '.join(numeric)}")
        try:
            changes[key] = numeric[key](value)
        except ValueError:
            raise SystemExit(f"--budget {pair}: {value!r} is not a number of type {numeric[key].__name__}") from None
    return replace(b, **changes), "".join(f"-{k}{v}" for k, v in changes.items() if v != getattr(b, k))


def settings(b: Budget, tasks: str, human: bool) -> dict:
    """What changes the result of a cell: a ledger holds the results of one grid's settings (its settings.json)."""
    adds_cells = ("demos", "multiples", "seeds", "variants", "variant_seeds")  # these only add or drop cells
    return {"tasks": tasks, "human_videos": human, "scenes": SCENES,
            **{f.name: getattr(b, f.name) for f in fields_of(Budget) if f.name not in adds_cells}}


def main() -> None:
    quiet()
    ap = argparse.ArgumentParser(description=first_sentence(__doc__))
    ap.add_argument("--plan", action="store_true", help="print the grid with estimated CPU time and stop (after "
                    "restoring the ledger's and linking the default grid's finished cells, as a run does)")
    ap.add_argument("--report", action="store_true", help="summarize the cells done so far; run none")
    ap.add_argument("--quick", action="store_true", help="the smallest grid (one seed, one D, tiny budgets)")
    ap.add_argument("--tasks", default=TASKS, help=f"comma-separated Meta-World tasks (default: {TASKS})")
    ap.add_argument("--no-human", action="store_true", help="leave ../shared/data/human out of pre-training")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "out" / "fewshot_grid"),
                    help="where the grids' cells go (default: benchmarks/out/fewshot_grid)")
    ap.add_argument("--only", nargs="+", default=(), metavar="GLOB",
                    help="run only the cells matching these globs and what they read (default: the whole grid)")
    ap.add_argument("--budget", nargs="+", default=[], metavar="KEY=VALUE",
                    help="change the budget, e.g. pretrain_steps=16000: a grid of its own, sharing the default grid's "
                         "cells the change leaves alone, compared with its committed ones (default: none)")
    ap.add_argument("--ledger", default=None, help=f"committed leaf results to restore and extend (default: "
                    f"{LEDGER.relative_to(LEDGER.parents[3])} for the default grid when its settings match)")
    args = ap.parse_args()
    base = Budget.quick() if args.quick else Budget()
    b, suffix = with_budget(base, args.budget)
    if args.quick and args.tasks == TASKS:
        args.tasks = "reach,push"
    name = ("quick" if args.quick else "default") + suffix
    root, cells = Path(args.out) / name, grid(b)
    human = Path(__file__).resolve().parents[2] / "shared" / "data" / "human"
    human = None if args.no_human or not human.exists() else human
    mine = settings(b, args.tasks, human is not None)
    standard = not args.quick and args.tasks == TASKS and human is not None  # the default grid's tasks and corpus
    ledger = Path(args.ledger) if args.ledger else LEDGER if standard and not suffix else None
    ledger = open_ledger(root, ledger, mine, strict=bool(args.ledger))
    if standard and suffix and (default := root.parent / "default").is_dir():
        from _fewshot_plan import unchanged_by

        changed = {k for k, v in asdict(b).items() if v != getattr(base, k)}
        if n := share_cells(root, default, [c.name for c in unchanged_by(cells, changed)]):
            print(f"sharing {n} finished cell{'s' * (n > 1)} of {default} that {', '.join(sorted(changed))} "
                  "leaves unchanged")
    todo = select(cells, root, tuple(args.only))
    from _fewshot_plan import plan_table

    print(plan_table(cells, b, len(args.tasks.split(",")), root, todo))
    if args.plan:
        return
    from _fewshot_runner import Runner

    runner = Runner(root, b, args.tasks, human)
    by_name = {c.name: c for c in todo}
    if not args.report:
        run_cells(root, list(by_name), lambda n: [c.name for c in needs(by_name[n])],
                  lambda n: runner.run(by_name[n]))
    if ledger:
        n = record_ledger(root, ledger, mine, [c.name for c in cells if c.stage in LEAVES])
        print(f"recorded {n} cells in {ledger}")
    from _common import save

    from _fewshot_report import against, plot, summarize

    summary = summarize(root, cells)
    compared = against(root, cells, LEDGER / "cells") if standard and suffix else {}
    for cell, r in compared.items():
        print(f"{cell}: {r['here']} here, {r['default']} in the default grid" + (
            f" (only here {r['wins']}, only there {r['losses']}, p = {r['p_value']:.2g})" if "wins" in r else ""))
    plot(summary, root / "success_vs_actionless.png", b.multiples)
    ran_on = sorted({m for t in summary.values() for r in t.values() for m in r.get("machines", [])})
    save("fewshot" if name == "default" else "fewshot_" + name.replace("-", "_"), {
        "tasks": args.tasks, "budget": asdict(b), "summary": summary,
        **({"cpu": " and ".join(ran_on)} if ran_on else {}),  # the cells' processors, not this report's
        **({"against_default": compared} if compared else {}),
        "cells_done": sum(is_done(root, c) for c in cells), "cells": len(cells),
        "plot": str(root / "success_vs_actionless.png")})


if __name__ == "__main__":
    main()
