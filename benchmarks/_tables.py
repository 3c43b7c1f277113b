"""Rows of benchmarks/results.md for the head-to-head grid (fewshot), the G1 offline check (g1), the token index
at scale (index_scale) and the GPU check (gpu); _results_md.py renders the other benchmarks."""

from __future__ import annotations

from _common import oldest_first
from _fewshot_report import BLIND, corpora, pooled


def cpu_name(cpu: str) -> str:
    """e.g. "Intel(R) Xeon(R) Processor" -> "Intel Xeon"."""
    return cpu.replace("(R)", "").replace(" Processor", "")


def pct(x: float) -> str:
    return f"{100 * x:.0f}%"


ONLY = "episodes only vidpolicy on the largest corpus / only this one solved"
LEAD = "its success minus this one's, points (95% interval)"


def ahead_by(vs: dict) -> str:
    """A paired comparison's success difference in points with its bootstrap interval: "-3 (-12 to +4)"; "" for one
    made before the report computed it."""
    def points(x: float) -> str:
        return f"{n:+d}" if (n := round(100 * x)) else "0"
    if "ci95" not in vs:
        return ""
    return f"{points(vs['difference'])} ({points(vs['ci95'][0])} to {points(vs['ci95'][1])})"


def rows(r: dict) -> list[tuple[str, str, str]]:
    out = []
    for key in ("fewshot", "fewshot_quick"):
        for d, table in r.get(key, {}).get("summary", {}).items():
            for name, v in table.items():
                if "mean" in v:
                    vs = v.get("vs_pretrained")
                    out.append((key, f"{d}, {name}: success mean (min-max over seeds {v['seeds']})"
                                + (f"; {ONLY}; {LEAD}" if vs else ""),
                                f"{pct(v['mean'])} ({pct(v['min'])}-{pct(v['max'])})"
                                + (f"; {vs['wins']} / {vs['losses']} (p = {vs['p_value']:.2g}); {ahead_by(vs)}"
                                   if vs else "")))
                if split := v.get("blind_split"):
                    (a, n), (b, m) = split["blind"], split["not_blind"]
                    out.append((key, f"{d}, {name}: success in the scenes some demo's blind replay solves / in the "
                                "others (pooled over seeds)", f"{pct(a / n)} of {n} / {pct(b / m)} of {m}"))
                if vs := v.get("vs_scratch"):
                    out.append((key, f"{d}, {name}: episodes only it / only vidpolicy from scratch solved, on the "
                                f"seeds both ran; its success minus scratch's, points (95% interval)",
                                f"{vs['wins']} / {vs['losses']} (p = {vs['p_value']:.2g}); {ahead_by(vs)}"))
                if name == BLIND:
                    out.append((key, f"{d}, {BLIND}: each demo's actions open loop in each scene, no observation: "
                                "success of a random demo / scenes some demo solves",
                                f"{pct(pooled(v['replay']))} / {pct(pooled(v['best_demo']))}"))
                if "imagination" in v:
                    im = v["imagination"]
                    out.append((key, f"{d}, {name}: imagined future vs copying the present, token accuracy / PSNR",
                                f"{im['imagined']['token_accuracy']:.3f} vs {im['copy_history']['token_accuracy']:.3f}"
                                f" / {im['imagined']['psnr']:.2f} vs {im['copy_history']['psnr']:.2f} dB"))
    for key in ("g1", "g1_quick"):
        g = r.get(key)
        if g:
            m = g["training_mean"]
            out.append((key, "training mean: held-out normalised MSE, first action / chunk / median over joints",
                        f"{m['first_action']:.2f} / {m['chunk']:.2f} / {m['first_action_median_dim']:.2f}"))
            for name, by_decode in g["results"].items():
                for decode, s in by_decode.items():
                    label = name if decode == "default" else f"{name} ({decode})"
                    out.append((key, f"{label}: held-out normalised MSE, first action / chunk / median over joints",
                                f"{s['first_action']:.2f} / {s['chunk']:.2f} / {s['first_action_median_dim']:.2f}"))
    for key in ("index_scale", "index_scale_quick"):
        if key in r:
            x = r[key]
            out.append((key, f"token index of {x['clips'] / 1e6:g} M clips: open ms / memory MiB / checksums s / "
                        "all pairs s", f"{1e3 * x['open_s']:.1f} / {x['open_rss_growth_mib']:.0f} / "
                        f"{x['verify_checksums_s']:.2f} / {x['pairs_s']:.1f}"))
    gpu = r.get("gpu", {}).get("sections", {})
    for name, v in gpu.get("denoiser", {}).items():
        if isinstance(v, dict) and "tflops" in v:
            out.append(("gpu", f"denoiser {name} ({v['parameters_m']} M): batch / tokens/s / TFLOP/s / MFU",
                        f"{v['batch']} / {v['tokens_per_s']} / {v['tflops']:.0f} / {pct(v['mfu_measured_peak'])}"))
    pol = gpu.get("policy", {})
    if "robots16_chunk_ms" in pol and pol.get("finetune", {}).get("batch"):
        out.append(("gpu", "policy: one chunk from camera frames for 1 / 16 robots (ms); fine-tuning batch / step s",
                    f"{pol['robots1_chunk_ms']:.0f} / {pol['robots16_chunk_ms']:.0f}; "
                    f"{pol['finetune']['batch']} / {pol['finetune']['step_s']:.3f}"))
    return out


BASELINES = {"vpdd scratch": "vidpolicy from scratch", "diffusion": "Diffusion Policy", "act": "ACT"}
# the sizes _fewshot_runner.BASELINES gives them (parameters counted in the grid's checkpoints)
BASELINE_SIZES = "Diffusion Policy / ACT at CPU sizes: 16 M / 13 M parameters (defaults ~265 M / ~52 M)"


def short(name: str) -> str:
    """A policy's name without its parenthesis or the project's name: "vidpolicy pre-trained (20x D ...)" ->
    "pre-trained"."""
    return name.split(" (")[0].removeprefix("vidpolicy ")


def fewshot_table(f: dict, full: bool = False) -> str:
    """The grid's table, one block of rows per demo count with a rollout done (a first column names it when there
    are several): success per policy and task (mean over the seeds done), pooled with its range over seeds, the
    paired test against vidpolicy pre-trained on the largest corpus, and the blind floor. The README's (default):
    the paper's recipe on the largest corpus and the baselines; ``full`` (benchmarks/results.md): every policy, each
    task's range too."""
    done = {d: t for d, t in f["summary"].items() if any("mean" in v for v in t.values())}
    several = len(done) > 1
    out, seed_notes, commits, cpus, n_seeds = [], [], set(), set(), len(f["budget"]["seeds"])
    complete = True  # every policy has every seed: one short note
    for d, table in done.items():
        ks = [k for k in corpora(table) if "mean" in table[f"vpdd A={k}xD"]]
        names = {**{f"vpdd A={k}xD": f"vidpolicy pre-trained ({k}x D actionless)" for k in (ks if full else ks[-1:])},
                 **BASELINES}
        if full:  # the variants too, by their grid names
            names |= {k: "vidpolicy " + k.removeprefix("vpdd ") for k in table if k not in names and k != BLIND}
        present = [k for k in names if "mean" in table.get(k, {})]
        tasks = list(table[present[0]]["per_task"])
        lead = f"| {d[1:]} " if several else ""
        if not out:
            out = [("| demos " if several else "") + "| policy | " + " | ".join(t.removesuffix("-v3") for t in tasks)
                   + " | all | pre-trained ahead by |", "| --- " * (len(tasks) + 3 + several) + "|"]
        for k in present:
            t, vs = table[k], table[k].get("vs_pretrained")
            paired = ", ".join(x for x in (ahead_by(vs), f"p = {vs['p_value']:.2g}") if x) if vs else ""
            out.append(f"{lead}| {names[k]} | " + " | ".join(_success(t["per_task"][x], full) for x in tasks)
                       + f" | **{_success(t)}** | {paired} |")
        if BLIND in table:  # the floor: no policy, no camera
            replay = table[BLIND]["replay"]
            out.append(f"{lead}| a demo replayed blind | " + " | ".join(f"{100 * replay[x]:.0f}" for x in tasks)
                       + f" | **{100 * pooled(replay):.0f}** |  |")
        counts = {k: len(table[k]["seeds"]) for k in present}
        seeds = max(counts.values())
        lag: dict[int, list[str]] = {}  # a grid part-way: the policies with fewer seeds, by their count
        for k, n in counts.items():
            if n < seeds:
                lag.setdefault(n, []).append(names[k].removeprefix("vidpolicy ") if full else short(names[k]))
        fewer = "; ".join(f"{' / '.join(who)}: {n}" for n, who in lag.items())  # names hold commas
        seed_notes.append(f"{seeds} of {n_seeds} seeds" + (f" at {d[1:]} demos" if several else "")
                          + (f" ({fewer})" if fewer else ""))
        complete &= seeds == n_seeds and not fewer
        commits |= {c for k in present for c in table[k].get("commits", [])}
        cpus |= {cpu_name(m) for k in present for m in table[k].get("machines", [])}
    commits = oldest_first(list(commits)) or [f["commit"]]
    # a bounded line in the README; benchmarks/results.json lists each policy's commits
    shown = ", ".join(commits) if len(commits) <= 3 else f"{commits[0]} to {commits[-1]} ({len(commits)} commits)"
    b, blind = f["budget"], any(BLIND in t for t in done.values())
    demos = " or ".join(d[1:] for d in done) + " demos per task" + (" (first column)" if several else "")
    spread = "range in brackets" if full else "all: range in brackets"
    notes = f"{n_seeds} seed{'s' * (n_seeds > 1)}" if complete else ", ".join(seed_notes)
    out.append(f"\nSuccess %, {demos}, camera + 4-d agent_pos, {b['eval_episodes']} episodes per task "
               f"of up to {b['max_steps']} steps, {notes}; {spread}; {b['train_steps']:,} "
               f"training steps each; {BASELINE_SIZES}. "
               + ("Blind: each demo's actions open loop, no observation. " if blind else "")
               + "Ahead by: pre-trained's success minus this one's on shared seeds, points (95% bootstrap "
               "interval over tasks x seeds), exact McNemar p. "
               f"{' and '.join(sorted(cpus) or [cpu_name(f.get('cpu', ''))])}, 2 cores; rollouts at {shown}.")
    return "\n".join(out) + "\n"


def _success(v: dict, spread: bool = True) -> str:
    """A success cell: the mean over seeds, in percent, and (``spread``) its range when the seeds differ."""
    mid = f"{100 * v['mean']:.0f}"
    return mid if v["min"] == v["max"] or not spread else f"{mid} ({100 * v['min']:.0f}-{100 * v['max']:.0f})"


G1_LABELS = {"vpdd-regression": "vidpolicy", "vpdd-tokens": "its token head", "diffusion": "Diffusion Policy",
             "act": "ACT"}


def g1_headline(g: dict) -> tuple[str, str]:
    """The README's G1 row: per policy, the first action's normalised MSE on its median joint, the mean over seeds
    with their range (the token head as the paper decodes it, its mode), beside the training mean."""
    answers = []
    for policy, label in G1_LABELS.items():
        runs = [r.get("default", r.get("mode")) for k, r in g["results"].items() if k.split("/")[0] == policy]
        x = [r["first_action_median_dim"] for r in runs]
        spread = f" ({min(x):.2f}-{max(x):.2f})" if len(x) > 1 else ""
        answers += [f"{label} {sum(x) / len(x):.2f}{spread}"] if x else []
    seeds = len({k.split("/")[1] for k in g["results"]})
    question = (f"G1 robot offline (26 joints, {g['budget']['train_steps']} steps each, {g['heldout_episodes']} "
                f"held-out episodes{f', {seeds} seeds' * (seeds > 1)}): first action's normalised MSE, median joint")
    return question, ", ".join(answers + [f"training mean {g['training_mean']['first_action_median_dim']:.2f}"])
