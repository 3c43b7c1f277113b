"""The whole pipeline through the CLI on generated data: `vidpolicy demo --quick`."""

from __future__ import annotations

import json

from _util import run_cli


def test_demo_quick_runs_every_stage(tmp_path):
    r = run_cli("demo", "--quick", "--out", str(tmp_path / "demo"), timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert s["tokenizer_psnr_db"] > 10
    # robot frames: left-right flips only (each stage's config.json is saved next to its output)
    assert json.loads((tmp_path / "demo" / "tokenizer" / "config.json").read_text())["flips"] == "h"
    assert 0 <= s["imagined_token_accuracy"] <= 1
    assert set(s["success"]) == {"reach-v3"}
    for p in [s["outputs"]["success_plot"], s["outputs"]["imagine_sheet"], *s["outputs"]["loss_plots"]]:
        assert (tmp_path / "demo").joinpath(p).exists(), p
    assert "mean success" in r.stdout
