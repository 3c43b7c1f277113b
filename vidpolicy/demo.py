"""``vidpolicy demo``: the whole pipeline (`vidpolicy.pipeline`) at a small size, on data it generates (no
download), and a summary of what it measured."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from vidpolicy.common.cli_args import opt
from vidpolicy.common.io import write_json


@dataclass
class DemoConfig:
    out: str = opt("demo_out", "where every stage writes its directory")
    quick: bool = opt(False, "a ~3 minute smoke run (tiny models, one task)")
    human_videos: str | None = opt(None, "add a folder of human videos (e.g. ../shared/data/human) to pre-training")
    tasks: str = opt("reach,button-press-topdown,drawer-close", "tasks learned")
    actionless_tasks: str = opt("door-open,window-open,push,drawer-open", "actionless corpus")
    view: str = opt("vidpolicy", "vidpolicy or lerobot (as lerobot-eval; slower)")


SIZES = {
    # quick: a smoke test of every stage; default: small but learns something in ~20 min on 2 CPU cores
    True: dict(demos=2, actionless=2, size=64, codebook=256, hidden=64, tok_steps=60, tok_batch=4, width=128,
               depth=2, pre_steps=60, ft_steps=60, ft_depth=2, episodes=1, max_steps=60, sampling_steps=4,
               tasks="reach", actionless_tasks="push"),
    False: dict(demos=10, actionless=5, size=96, codebook=1024, hidden=96, tok_steps=600, tok_batch=8, width=192,
                depth=4, pre_steps=400, ft_steps=600, ft_depth=4, episodes=3, max_steps=150, sampling_steps=6),
}


def run_demo(cfg: DemoConfig, overwrite: bool = False) -> dict:
    from vidpolicy.pipeline import run_pipeline  # torch and the stages: not needed to read the flags

    s = {**SIZES[cfg.quick], "view": cfg.view}
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", vars(cfg))
    summary = run_pipeline(out, s, s.get("tasks", cfg.tasks), s.get("actionless_tasks", cfg.actionless_tasks),
                           cfg.human_videos, overwrite=overwrite)
    write_json(out / "summary.json", summary)
    print("\n" + format_summary(summary))
    return summary


def format_summary(s: dict) -> str:
    rows = [("tokenizer held-out PSNR", f"{s['tokenizer_psnr_db']:.2f} dB" if s["tokenizer_psnr_db"] else "n/a"),
            ("imagined-future token accuracy",
             f"{s['imagined_token_accuracy']:.3f}" if s["imagined_token_accuracy"] is not None else "n/a")]
    if s.get("copy_history_token_accuracy") is not None:  # the bar an imagined future has to clear
        rows.append(("  copying the history instead", f"{s['copy_history_token_accuracy']:.3f}"))
    rows += [(f"success {t}", f"{100 * r:.0f}%") for t, r in s["success"].items()]
    rows.append(("mean success", f"{100 * s['mean_success_rate']:.0f}%"))
    if s.get("mean_blind_replay_success") is not None:  # the bar the policy has to clear
        rows.append(("  replaying a demo blind instead", f"{100 * s['mean_blind_replay_success']:.0f}%"))
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {v}" for k, v in rows]
    lines += ["", "wrote:"] + [f"  {v}" if isinstance(v, str) else "  " + "\n  ".join(v) for v in s["outputs"].values()]
    lines.append("stage seconds: " + json.dumps(s["stage_seconds"]))
    return "\n".join(lines)
