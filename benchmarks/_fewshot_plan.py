"""The head-to-head grid's plan (benchmarks/fewshot.py --plan): each cell's estimated CPU time, from reference costs
scaled by what the cells already finished on this processor took."""

from __future__ import annotations

from pathlib import Path
from statistics import median

from vidpolicy.finetune.config import FinetuneConfig

from _common import cell_result, cpu_model
from fewshot import HELDOUT, VARIANTS, Budget, Cell, is_done, needs

# rough CPU seconds on 2 cores of the Intel Xeon of sessions 29-35: per demo episode collected or replayed blind,
# per optimizer step (vidpolicy's with its video model training, as from scratch), per evaluated step
COST = {"collect_episode": 1.5, "replay_episode": 0.25, "tokenizer_step": 0.25, "pretrain_step": 1.1,
        "finetune_step": 1.7, "diffusion_step": 1.0, "act_step": 0.5, "imagine_sample": 3.0,
        # per simulated step, from the first default rollouts (sharing the cores, so rough)
        "vpdd_rollout_step": 0.07, "vpdd_history_rollout_step": 0.035, "diffusion_rollout_step": 0.09,
        "act_rollout_step": 0.02}
# a vidpolicy fine-tuning step with the video model frozen, against one that trains it (finetune_step): 1.0 against
# 2.5 s (Intel Xeon), 0.85 against 2.2 s (AMD EPYC)
FROZEN = 0.4


def estimate_s(cell: Cell, b: Budget, n_tasks: int) -> float:
    """A rough CPU time for ``cell`` on the reference machine (see COST)."""
    if cell.stage == "demos":
        return COST["collect_episode"] * n_tasks * cell.demos
    if cell.stage == "blind":
        return COST["replay_episode"] * n_tasks * cell.demos * b.eval_episodes
    if cell.stage == "actionless":
        return COST["collect_episode"] * n_tasks * cell.demos * cell.multiple
    if cell.stage == "others":
        from vidpolicy.envs.tasks import MT50

        return COST["collect_episode"] * min(len(MT50) - n_tasks, b.other_tasks or len(MT50)) * b.other_episodes
    if cell.stage == "pretrain":
        return COST["tokenizer_step"] * b.tokenizer_steps + COST["pretrain_step"] * b.pretrain_steps * (
            cell.multiple > 0)
    if cell.stage == "heldout":
        return COST["collect_episode"] * n_tasks * HELDOUT
    if cell.stage == "imagine":
        return COST["imagine_sample"] * b.imagine_samples
    if cell.stage == "train":
        step = COST[f"{'finetune' if cell.family == 'vpdd' else cell.policy}_step"]
        change = VARIANTS[cell.variant][1] if cell.variant else {}
        if cell.family == "vpdd" and not FinetuneConfig(from_scratch=cell.multiple == 0, **change).trains_video:
            step *= FROZEN
        elif change.get("act_on", "joint") != "joint":
            step *= 1.6  # two video passes while the video model trains (measured 1.5-1.8x)
        return step * b.train_steps
    episodes_steps = n_tasks * b.eval_episodes * b.max_steps * 0.8  # solved episodes end early; few are solved
    own = f"{cell.policy.replace('-', '_')}_rollout_step"
    return COST.get(own, COST[f"{cell.family}_rollout_step"]) * episodes_steps


def speed(cells: list[Cell], b: Budget, n_tasks: int, root: Path, cpu: str) -> dict[str, float]:
    """Per stage, the median of measured over estimated time of the cells finished on processor ``cpu`` in one
    go ("resumed" false: a resumed cell's wall_s counts its last run only). Stages differ too much to share one."""
    ratios: dict[str, list[float]] = {}
    for c in (c for c in cells if is_done(root, c)):
        r = cell_result(root, c.name)
        if r.get("cpu") == cpu and r.get("resumed") is False and r.get("wall_s") and (est := estimate_s(c, b, n_tasks)):
            ratios.setdefault(c.stage, []).append(r["wall_s"] / est)
    return {s: median(v) for s, v in ratios.items()}


def plan_table(cells: list[Cell], b: Budget, n_tasks: int, root: Path | None = None,
               todo: list[Cell] | None = None) -> str:
    """Each cell's estimate and state: done, to run, or "-" (not needed: every cell that reads it is done)."""
    cpu = cpu_model()
    scale = speed(cells, b, n_tasks, root, cpu) if root else {}
    lines, total, left = [f"{'cell':<40} {'est. min':>8}  done"], 0.0, 0.0
    for c in cells:
        est = estimate_s(c, b, n_tasks) * scale.get(c.stage, 1.0)
        done = bool(root and is_done(root, c))
        runs = not done and (todo is None or c in todo)
        total += est
        left += est if runs else 0
        lines.append(f"{c.name:<40} {est / 60:>8.1f}  {'yes' if done else '' if runs else '-'}")
    lines.append(f"{len(cells)} cells, ~{total / 3600:.1f} CPU-hours in all, ~{left / 3600:.1f} left")
    lines.append("estimates for 2 cores of an Intel Xeon" + (f"; scaled to {cpu} by the cells it finished in one go "
                 "(stage: measured / reference): " + ", ".join(f"{s} {x:.2f}" for s, x in scale.items()) if scale
                 else ""))
    return "\n".join(lines)


def reads(cell: Cell) -> set[str]:
    """The Budget fields ``cell``'s own result depends on, beside its D, k, policy and seed (k = 0 pre-trains one
    step whatever pretrain_steps says; LeRobot's baselines have sizes of their own)."""
    if cell.stage == "pretrain":
        return {"tokenizer_steps", "small"} | ({"pretrain_steps"} if cell.multiple else set())
    if cell.stage == "train":
        return {"train_steps"} | ({"small"} if cell.family == "vpdd" else set())
    return {"others": {"other_episodes", "other_tasks"}, "blind": {"eval_episodes", "max_steps"},
            "rollout": {"eval_episodes", "max_steps"}, "imagine": {"imagine_samples"}}.get(cell.stage, set())


def unchanged_by(cells: list[Cell], changed: set[str]) -> list[Cell]:
    """The cells whose results do not depend on the Budget fields ``changed``: neither they nor any cell they read,
    transitively, reads one (a grid with a changed budget shares these with the default grid)."""
    clean: dict[Cell, bool] = {}

    def unchanged(c: Cell) -> bool:
        if c not in clean:
            clean[c] = not reads(c) & changed and all(unchanged(n) for n in needs(c))
        return clean[c]
    return [c for c in cells if unchanged(c)]
