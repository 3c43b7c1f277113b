"""benchmarks/results.md: every benchmark's rows (the head-to-head grid's, G1's, the index's and the GPU check's come
from _tables.py), the commits and machines they were measured at, and the grid's full per-task table."""

from __future__ import annotations

from pathlib import Path

from _tables import fewshot_table, rows


def fmt(x, pct: bool = False) -> str:
    if x is None:
        return "n/a"
    if pct:
        return f"{100 * x:.0f}%"
    if isinstance(x, float):  # three significant digits, but 1020, not 1.02e+03
        return f"{x:.0f}" if abs(x) >= 1000 else f"{x:.3g}"
    return str(x)


def _tokenizer_shape(p: dict) -> str:
    """A budget run's tokenizer for its row: ', 32-d codes, 0 encoder blocks, no attention, 5 training squares' (and
    its machine where recorded)."""
    parts = [f"{p['embedding_dim']}-d codes"] if "embedding_dim" in p else []
    parts += [f"{p['encoder_res_layers']} encoder blocks"] if "encoder_res_layers" in p else []
    parts += [f"{p['up_channels']}-wide upsampling"] if "up_channels" in p else []
    parts += [f"{p['attn_heads']} attention heads" if p["attn_heads"] else "no attention"] if "attn_heads" in p else []
    parts += [f"{p['crops']} training square{'s' if p['crops'] > 1 else ''}"] if "crops" in p else []
    parts += [f"batch {p['batch_size']}, lr {p['lr']:g}"] if "batch_size" in p else []
    parts += [f"flips {p['flips']}"] if "flips" in p else []
    parts += [f"{p['codebook_restart']} restarts"] if "codebook_restart" in p else []
    parts += [f"Adam beta2 {p['adam_beta2']:g}"] if "adam_beta2" in p else []
    if p.get("small_crops"):
        parts += [f"the first {p['small_crops']:.0%} of steps on {p['small_crop_size']}² squares"]
    parts += [p["cpu"]] if "cpu" in p else []
    parts += [f"at {p['commit']}"] if "commit" in p else []
    return "".join(", " + x for x in parts)


def _pair(s: dict) -> str:
    """A foresight summary's imagined / copy token accuracy; "-" where it holds no plans (e.g. nothing solved)."""
    return f"{s['imagined_token_accuracy']:.3f} / {s['copy_present_token_accuracy']:.3f}" if s["plans"] else "-"


def markdown(r: dict) -> str:
    lines = ["| benchmark | measure | value |", "| --- | --- | --- |"]
    add = lambda b, m, v: lines.append(f"| {b} | {m} | {v} |")  # noqa: E731
    if "tokenize" in r:
        t = r["tokenize"]
        add("tokenize", "decode clips/s (decord / torchcodec), 4x96²",
            f"{fmt(t['decode_clips_per_s']['decord'])} / {fmt(t['decode_clips_per_s']['torchcodec'])}")
        add("tokenize", "encoder clips/s, default 96² (fp32, 2 threads)", fmt(t["encode_clips_per_s_default_96"]))
        if "encode_clips_per_s_one_core_bf16" in t:
            add("tokenize", "encoder clips/s on one core (bf16, as in tokenize)",
                fmt(t["encode_clips_per_s_one_core_bf16"]))
        if "ms_per_clip_one_core" in t:
            c = t["ms_per_clip_one_core"]
            add("tokenize", "ms per clip on one core: decode (decord) / encode + code search (bf16)",
                f"{c['decode_decord']:.2f} / {c['encode_bf16']:.2f}")
        add("tokenize", "tokenize clips/s (bf16) / share of decord decode",
            f"{fmt(t['tokenize_clips_per_s'])} / {fmt(t['tokenize_over_decord_decode'], True)}")
        if "earlier_default" in t:
            c = t["earlier_default"]
            add("tokenize", "earlier default (256-d codes, 2 encoder blocks): encoder clips/s on one core / tokenize "
                "clips/s / share of decode",
                f"{fmt(c['encode_clips_per_s_one_core_bf16'])} / {fmt(c['tokenize_clips_per_s'])} / "
                f"{fmt(c['tokenize_over_decord_decode'], True)}")
        for p in t.get("psnr_after_budget", []) + t.get("psnr_equal_budget", []):
            add("tokenize", f"held-out PSNR / SSIM at {p['size']}² after {p['budget_min']:g} CPU-min "
                f"({p['steps']} steps{_tokenizer_shape(p)})", f"{p['psnr']:.2f} dB / {p['ssim']:.3f}")
    if "pretrain" in r:
        p = r["pretrain"]
        add("pretrain", "matmul peak GFLOP/s bf16 / fp32",
            f"{fmt(p['matmul_peak_gflops']['bf16'])} / {fmt(p['matmul_peak_gflops']['fp32'])}")
        for k in ("train_bf16", "train_fp32"):
            add("pretrain", f"{k}: step s (batch 8) / GFLOP/s / share of peak / tokens/s",
                f"{p[k]['step_s']:.2f} / {p[k]['gflops']:.0f} / {fmt(p[k]['fraction_of_peak'], True)} / "
                f"{p[k]['tokens_per_s']:.0f}")
        for k, v in p.get("sample_latency_s_default_model", {}).items():
            add("pretrain", f"imagine one clip, {k} steps (video model)", f"{v:.2f} s")
        for k, v in p.get("sample_latency_s_policy_with_actions", {}).items():
            add("pretrain", f"imagine one clip + actions, {k} steps", f"{v:.2f} s")
        for k, v in p.get("imagination", {}).items():
            add("pretrain", f"token accuracy vs the true future ({Path(p.get('imagination_tokens', '?')).name}), "
                f"{k} steps", f"{v['token_accuracy']:.3f}")
    if "envs" in r:
        e = r["envs"]
        add("envs", "env steps/s (no render)", fmt(e["env_steps_per_s_no_render"]))
        for k, v in e["render_fps"].items():
            add("envs", f"render fps {k}", fmt(v))
        add("envs", "expert episodes collected / minute (96²)", fmt(e["collected_episodes_per_minute_96"]))
    for key in ("metaworld_fewshot", "metaworld_fewshot_quick"):
        if key in r:
            f = r[key]
            cols = [c for c in ("pretrained", "pretrained_joint", "scratch", "expert") if c in f["mean"]]
            names = {"pretrained": "pretrained (video frozen)", "pretrained_joint": "pretrained (video trained)"}
            add(key, f"mean success {' / '.join(names.get(c, c) for c in cols)} ({f['demos_per_task']} demos, "
                f"{f['eval_episodes_per_task']} eval eps per task, {f['minutes']:.0f} min)",
                " / ".join(fmt(f["mean"][c], True) for c in cols))
            if f["sizes"].get("robot_share"):
                add(key, "pre-training mix: share of the target tasks' demo videos (actions unused)",
                    f"{f['sizes']['robot_share']:.2f}" + (f" (pre-trained again at {f['pretrained_commit']})"
                                                         if "pretrained_commit" in f else ""))
            for task, row in f["per_task"].items():
                add(key, task, " / ".join(fmt(row.get(c), True) for c in cols))
            for c, v in f.get("paired_vs_scratch", {}).items():
                add(key, f"{names.get(c, c)} vs scratch, same episodes: solved only by it / only by scratch "
                    "(McNemar p)", f"{v['wins']} / {v['losses']} (p = {v['p_value']:.2g})")
            d = f.get("heldout_diagnostics", {})
            for c, v in (("pretrained", d.get("policy")), ("pretrained_joint", d.get("policy_joint")),
                         ("scratch", d.get("policy_scratch"))):
                if v:
                    add(key, f"{names.get(c, c)} on held-out target-task demos: imagined-future token accuracy "
                        "(copying the history clip) / first-action normalised MSE / bin accuracy",
                        f"{v['imagined_token_accuracy']:.3f} ({v['copy_history_token_accuracy']:.3f}) / "
                        f"{v['first_action']['normalized_mse']:.3f} / {v['first_action']['bin_accuracy']:.3f}")
            for c, v in d.items():
                if isinstance(v, dict) and "instruction_swap" in v:
                    c = {"policy": "pretrained", "policy_joint": "pretrained_joint", "policy_scratch": "scratch"}[c]
                    add(key, f"{names.get(c, c)}, each instruction swapped for its actionless look-alike's (same "
                        "noise): imagined tokens unchanged / first-action normalised MSE, true -> swapped words",
                        "; ".join(f"{w}: {m['agree']:.2f} / {m['mse']:.3f} -> {m['mse_swap']:.3f}"
                                  for w, m in v["instruction_swap"].items()))
            w = f.get("watch_diagnostics")
            if w:
                t = w["token_agreement_with_recording"]
                add(key, "the expert drives, each policy watches (planning before every action): action error "
                    "(normalised MSE) from raw renders / through yuv420p, pretrained (video frozen); scratch; tokens "
                    "of the live frames agreeing with the recording's", f"{w['policy']['raw']:.3f} / "
                    f"{w['policy']['yuv420']:.3f}; {w['policy_scratch']['raw']:.3f} / "
                    f"{w['policy_scratch']['yuv420']:.3f}; {t['raw']:.2f} / {t['yuv420']:.2f}")
            for c, v in f.get("closed_loop_action_error", {}).items():
                add(key, f"{names.get(c, c)}: closed-loop action error against the expert in the states it reached "
                    "(normalised MSE; solved / failed episodes)",
                    f"{v['mean']:.3f} ({fmt(v['solved'])} / {fmt(v['failed'])})")
            for g, v in f.get("guidance", {}).items():
                pv, every = v["paired_vs_scratch"], f", planning every {v['execute']}" if v.get("execute") else ""
                add(key, f"pretrained (video frozen) with guidance {g}{every}: mean success / scratch; same episodes, "
                    "solved only by (a) / only by (b)", f"{fmt(v['mean']['pretrained'], True)} / "
                    f"{fmt(v['mean']['scratch'], True)}; {pv['wins']} / {pv['losses']} (p = {pv['p_value']:.2g})")
            for mode, n, v in [("execute", n, v) for n, v in f.get("execute", {}).items()] + [
                    ("yuv420", n, v) for n, v in f.get("yuv420", {}).items()]:
                pv = v["paired_vs_scratch"]
                what = (f"planning every {n} action(s) (the run: 4)" if mode == "execute" else
                        f"live frames through yuv420p chroma as the recorded demos (planning every {n})")
                add(key, f"{what}: mean success pretrained (video frozen) / scratch; same episodes, solved only by "
                    "(a) / only by (b)", f"{fmt(v['mean']['pretrained'], True)} / {fmt(v['mean']['scratch'], True)}; "
                    f"{pv['wins']} / {pv['losses']} (p = {pv['p_value']:.2g})")
                for c, e in v.get("closed_loop_action_error", {}).items():
                    add(key, f"{what}: {names.get(c, c)} closed-loop action error (solved / failed episodes)",
                        f"{e['mean']:.3f} ({fmt(e['solved'])} / {fmt(e['failed'])})")
            for seed, v in f.get("seed_spread", {}).items():
                add(key, f"fine-tuning seed {seed}: mean success pretrained (video frozen) / scratch",
                    f"{fmt(v['pretrained'], True)} / {fmt(v['scratch'], True)}")
    if "g1_offline" in r:
        for name, v in r["g1_offline"]["results"].items():
            add("g1_offline", f"{name}: held-out normalised action MSE / bin accuracy",
                f"{v['normalized_mse']:.3f} / {v['bin_accuracy']:.3f}")
    for key in ("lerobot_parity", "lerobot_parity_policy", "lerobot_parity_policy_vidpolicy"):
        for task, v in r.get(key, {}).get("expert", {}).items():
            add(key, f"scripted expert on {task}, {r[key]['episodes']} seeds: vidpolicy rollout --view lerobot / "
                f"LeRobot's rollout loop", f"{fmt(v['vidpolicy_rollout'], True)} / {fmt(v['lerobot_loop'], True)}")
        pol = r.get(key, {}).get("policy", {})
        for task, v in pol.items():
            if task.endswith("-v3"):
                agree = f"; returns equal in {v['returns_agreeing']}" if "returns_agreeing" in v else ""
                env = " --env.type=vidpolicy" if pol.get("view") == "vidpolicy" else ""
                add(key, f"{pol.get('type', 'vpdd')} policy on {task}: vidpolicy rollout / lerobot-eval{env}",
                    f"{fmt(v['vidpolicy_rollout'], True)} / {fmt(v['lerobot_eval'], True)}{agree}")
        if "select_action_s" in r.get(key, {}):
            t = r[key]["select_action_s"]
            add(key, "select_action ms, 480² frame, plugin / direct: mean per action; a call that imagines",
                f"{1e3 * t['plugin']['mean']:.1f} / {1e3 * t['direct']['mean']:.1f}; "
                f"{1e3 * t['plugin']['planning_median']:.1f} / {1e3 * t['direct']['planning_median']:.1f}")
    for key, f in r.items():
        if key.startswith("foresight"):
            held = f.get("heldout_expert_episodes")
            add(key, f"{f['policy'].split('fewshot_grid/')[-1]}, token accuracy of its imagined future / of copying "
                "the present, in its own episodes (solved, failed) and on held-out expert episodes",
                f"own {_pair(f['closed_loop'])} (solved {_pair(f['solved_episodes'])}, failed "
                f"{_pair(f['failed_episodes'])})" + (f"; expert {held['imagined']['token_accuracy']:.3f} / "
                                                      f"{held['copy_history']['token_accuracy']:.3f}" if held else ""))
    for row in rows(r):
        add(*row)
    commits = sorted({v.get("commit", "?") for v in r.values()}
                     | {s["commit"] for v in r.values() for s in v.get("seed_spread", {}).values() if "commit" in s}
                     | {c for v in r.values() for k, c in v.items() if k.endswith("_commit")}
                     | {p["commit"] for v in r.values() for k in ("psnr_after_budget", "psnr_equal_budget")
                        for p in v.get(k, []) if "commit" in p}
                     | {v[k]["commit"] for v in r.values() for k in ("heldout_diagnostics", "watch_diagnostics")
                        if k in v}
                     | {e["commit"] for v in r.values() for k in ("execute", "guidance", "yuv420")
                        for e in v.get(k, {}).values()})
    cpus = ", ".join(f"{k} on {v['cpu']}" for k, v in r.items() if "cpu" in v)
    older = [k for k, v in r.items() if "cpu" not in v]  # measured before the JSON named the processor
    where = f"; {cpus}" + (f"; {', '.join(older)} on an earlier machine" if older else "") if cpus else ""
    grid = r.get("fewshot", {})  # the head-to-head grid per task: every policy, each task's range over seeds
    per_task = f"\n**fewshot, per task** (success %)\n\n{fewshot_table(grid, full=True)}" if grid.get("summary") else ""
    return ("\n".join(lines) + f"\n\nCommits measured: {', '.join(commits)}; 2-core CPU machines, no GPU{where}.\n"
            + per_task)
