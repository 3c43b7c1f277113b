"""The whole pipeline through the CLI on generated data: `vidpolicy demo --quick`."""

from __future__ import annotations

import json

import pytest

from _util import run_cli


def test_demo_quick_runs_every_stage(tmp_path):
    r = run_cli("demo", "--quick", "--out", str(tmp_path / "demo"), timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert s["tokenizer_psnr_db"] > 10
    # robot frames: left-right flips only (each stage's config.json is saved next to its output)
    assert json.loads((tmp_path / "demo" / "tokenizer" / "config.json").read_text())["flips"] == "h"
    codebook = json.loads((tmp_path / "demo" / "tokenizer" / "config.json").read_text())["codebook_size"]
    assert s["imagined_token_accuracy"] > 2 / codebook  # above guessing a code
    assert set(s["success"]) == {"reach-v3"}
    for p in [s["outputs"]["success_plot"], s["outputs"]["imagine_sheet"], *s["outputs"]["loss_plots"]]:
        assert (tmp_path / "demo").joinpath(p).exists(), p
    assert "mean success" in r.stdout and "replaying a demo blind instead" in r.stdout
    # the floor: the 2 demos replayed blind in the rollout's scene, a share of them
    assert set(s["blind_replay_success"]) == {"reach-v3"} and s["mean_blind_replay_success"] in (0, 0.5, 1)
    # quiet by default: our bars and summary only (VIDPOLICY_VERBOSE=1 brings FFmpeg's and the libraries' back)
    out = r.stdout + r.stderr
    assert out.count("\n") <= 60 and "libx264" not in out and "@ 0x" not in out and "Warning" not in out, out[-3000:]


@pytest.mark.slow
def test_default_demo_learns_to_act(tmp_path):
    """The full `vidpolicy demo` (about 20 minutes on 2 cores): its policy solves at least a third of its 9 episodes,
    in scenes no demo showed (4 of 9 at afd065b; standing still solves none)."""
    r = run_cli("demo", "--out", str(tmp_path / "demo"), timeout=3600)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert s["tokenizer_psnr_db"] > 25 and s["mean_success_rate"] >= 1 / 3, s
