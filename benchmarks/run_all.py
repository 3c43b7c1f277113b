"""Run every benchmark and write benchmarks/results.json and benchmarks/results.md (included by the README).

    python benchmarks/run_all.py            # quick budgets (~20 min on 2 CPU cores)
    python benchmarks/run_all.py --full     # the issue budgets (several hours on 2 CPU cores)
    python benchmarks/run_all.py --collect  # only re-assemble the tables: benchmarks/out/*.json over results.json
    python benchmarks/run_all.py --collect fewshot g1  # ... from these out files only
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from _results_md import fmt, markdown
from _tables import BASELINES, cpu_name, fewshot_table, g1_headline

from vidpolicy.common.workers import die_with_parent

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"


def run(script: str, *args: str) -> None:
    print(f"== {script} {' '.join(args)}", flush=True)
    # the benchmark dies with this script: a killed run_all leaves nothing running
    subprocess.run([sys.executable, str(HERE / script), *args], check=True, cwd=HERE.parent,
                   preexec_fn=die_with_parent)


def older(commit: str, than: str) -> bool:
    """Whether commit ``commit`` is a strict ancestor of ``than`` (False when either is unknown to git)."""
    if not commit or not than or commit == than:
        return False
    return subprocess.run(["git", "merge-base", "--is-ancestor", commit, than], cwd=HERE,
                          capture_output=True).returncode == 0


def gather(committed: dict, names: list[str] | None = None) -> dict:
    """results.json's entries with benchmarks/out/*.json over them (only ``names`` when given); an out file older
    than the committed entry it would replace is left out, with a line saying so."""
    found = {p.stem: p for p in sorted(OUT.glob("*.json"))}
    missing = sorted(set(names or ()) - found.keys())
    if missing:
        raise SystemExit(f"{OUT}: no {', '.join(n + '.json' for n in missing)}")
    results = dict(committed)
    for name, p in found.items():
        if names and name not in names:
            continue
        new = json.loads(p.read_text())
        old = committed.get(name, {})
        if older(new.get("commit", ""), old.get("commit", "")):
            print(f"kept the committed {name} ({old['commit']}): {p} is older ({new['commit']})")
            continue
        results[name] = new
    return dict(sorted(results.items()))


def fill(path: Path, marker: str, text: str) -> None:
    """Replace what ``path`` holds between ``<!-- marker:start -->`` and ``<!-- marker:end -->`` with ``text``."""
    doc = path.read_text()
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    if start in doc and end in doc:
        head, rest = doc.split(start, 1)
        path.write_text(head + start + "\n" + text + rest[rest.index(end):])


def headline(r: dict) -> str:
    """The README's short table: one row per question a user asks, with where and when it was measured."""
    rows = ["| question | answer | measured |", "| --- | --- | --- |"]

    def row(question: str, answer: str, key: str) -> None:
        where = cpu_name(r[key].get("cpu", "an earlier machine"))
        rows.append(f"| {question} | {answer} | {where}, {r[key]['commit']} |")

    if r.get("g1", {}).get("results"):
        row(*g1_headline(r["g1"]), "g1")
    if "tokenize" in r:
        t = r["tokenize"]
        best = max((p for p in t["psnr_after_budget"] if p["size"] == 96 and p["budget_min"] == 20),
                   key=lambda p: p["psnr"], default=None)
        if best:
            row("tokenizer held-out PSNR, human video at 96², after 20 CPU-minutes", f"{best['psnr']:.2f} dB",
                "tokenize")
        row("tokenize throughput (clips/s; share of the decoder's own rate)",
            f"{fmt(t['tokenize_clips_per_s'])} ({fmt(t['tokenize_over_decord_decode'], True)})", "tokenize")
    if "pretrain" in r:
        lat = r["pretrain"]["sample_latency_s_policy_with_actions"]
        row("one imagined clip + action chunk, 10 / 25 denoising steps", f"{lat['10']:.2f} s / {lat['25']:.2f} s",
            "pretrain")
    if "lerobot_parity" in r:
        e = r["lerobot_parity"]["expert"]
        row(f"scripted expert, {len(e)} tasks x {r['lerobot_parity']['episodes']} seeds: vidpolicy rollout / "
            "LeRobot's loop", " / ".join(fmt(sum(v[k] for v in e.values()) / len(e), True)
                                        for k in ("vidpolicy_rollout", "lerobot_loop")), "lerobot_parity")
    if "lerobot_parity_policy_vidpolicy" in r:
        p = r["lerobot_parity_policy_vidpolicy"]
        eps = [v for k, v in p["policy"].items() if k.endswith("-v3")]
        kind = BASELINES.get(p["policy"]["type"], p["policy"]["type"])
        agreeing = sum(v["returns_agreeing"] for v in eps)
        row(f"grid {kind}, {len(eps)} tasks x {p['episodes']} seeds: equal returns in vidpolicy rollout / lerobot-eval",
            f"{agreeing} of {len(eps) * p['episodes']}", "lerobot_parity_policy_vidpolicy")
    return "\n".join(rows) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="the issue budgets instead of the quick ones (hours)")
    ap.add_argument("--collect", nargs="*", metavar="NAME",
                    help="only re-assemble the tables from benchmarks/out (these NAME.json only, when named)")
    args = ap.parse_args()
    if args.collect is None:
        quick = [] if args.full else ["--quick"]
        run("envs.py", *quick)
        run("pretrain.py", *quick)
        run("tokenizer.py", *quick)
        run("fewshot.py", *quick)  # the full grid takes many CPU-hours; it resumes cell by cell
        run("lerobot_parity.py", *quick)
        run("g1.py", *quick)
        run("index_scale.py", *quick)
    # benchmarks/out/ holds what ran on this checkout; the others keep their committed results
    committed = HERE / "results.json"
    results = gather(json.loads(committed.read_text()) if committed.exists() else {}, args.collect)
    (HERE / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (HERE / "results.md").write_text(table)
    fill(HERE.parent / "docs" / "experiments.md", "results", table)  # the experiment log keeps every number
    fill(HERE.parent / "README.md", "headline", headline(results))
    if results.get("fewshot", {}).get("summary"):  # the head-to-head grid gets its own table and plot
        fill(HERE.parent / "README.md", "fewshot", fewshot_table(results["fewshot"]))
        plot = HERE / results["fewshot"]["plot"]
        if plot.exists():
            shutil.copyfile(plot, HERE.parent / "docs" / "images" / "fewshot.png")
    print(table)


if __name__ == "__main__":
    main()
