"""Rows of benchmarks/results.md for the head-to-head grid (fewshot), the G1 offline check (g1), the token index
at scale (index_scale) and the GPU check (gpu); run_all.py renders the other benchmarks itself."""

from __future__ import annotations


def pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def rows(r: dict) -> list[tuple[str, str, str]]:
    out = []
    for key in ("fewshot", "fewshot_quick"):
        for d, table in r.get(key, {}).get("summary", {}).items():
            for name, v in table.items():
                if "mean" in v:
                    vs = v.get("vs_pretrained")
                    out.append((key, f"{d}, {name}: success mean (min-max over seeds {v['seeds']})"
                                + ("; vs vidpolicy on the largest corpus, episodes won / lost" if vs else ""),
                                f"{pct(v['mean'])} ({pct(v['min'])}-{pct(v['max'])})"
                                + (f"; {vs['wins']} / {vs['losses']} (p = {vs['p_value']:.2g})" if vs else "")))
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
    return out
