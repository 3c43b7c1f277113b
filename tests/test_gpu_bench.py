"""benchmarks/gpu.py --smoke: the prepared GPU check runs on the CPU at tiny sizes, so it never rots."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from _util import ROOT


def test_the_gpu_check_runs_every_section_at_tiny_sizes(tmp_path):
    out = tmp_path / "gpu.json"
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--smoke", "--out", str(out)],
                       capture_output=True, text=True, timeout=600, cwd=ROOT,
                       env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads(out.read_text())["sections"]
    assert [k for k, v in s.items() if "error" in v] == [], s
    assert s["peak"]["matmul_bf16_tflops"] > 0
    tiny = s["denoiser"]["tiny"]
    assert tiny["batch"] >= 2 and tiny["tokens_per_s"] > 0 and 0 < tiny["mfu_measured_peak"]
    assert s["tokenizer"]["tiny"]["clips_per_s"] > 0
    assert s["imagine"]["batch1_steps2_ms"] > 0 and s["imagine"]["cpu_generator"] == "ok"
    pol = s["policy"]
    assert pol["robots1_actions_ok"] and pol["robots2_actions_ok"] and pol["finetune"]["batch"] == 2
    assert pol["video_model_frozen"] and pol["action_model_trained"]  # fine-tuning moves the action model only
    dec = s["tokenize_vs_decode"]["workers_1"]
    assert dec["clips"] == 4 * 8 and dec["tokenize_clips_per_s"] > 0  # 4 videos of 32 frames: 8 clips each
    ddp = s["ddp"]
    assert ddp["processes"] == 2 and ddp["ranks_max_abs_diff"] == 0.0
    assert ddp["vs_one_process_max_abs_diff"] < 1e-4
    assert ddp["first_loss_ranks_mean"] == pytest.approx(ddp["first_loss_one_process"], rel=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_policy_plans_on_cuda_as_on_the_cpu():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from _gpu_parts import fresh_policy
    from vidpolicy.common.text import TEXT_DIM

    pol = fresh_policy(torch.device("cpu"), smoke=True)
    hist = torch.randint(0, pol.video.config.codebook_size, (2, pol.video.tokens_per_clip))
    text, state = torch.randn(2, TEXT_DIM), torch.zeros(2, 4)
    video, actions = pol.plan(hist, text, steps=2, generator=torch.Generator().manual_seed(0), state=state)
    pol.to("cuda")
    video_c, actions_c = pol.plan(hist, text, steps=2, generator=torch.Generator("cuda").manual_seed(0), state=state)
    assert video_c.device.type == "cuda" and video_c.shape == video.shape and actions_c.shape == actions.shape
