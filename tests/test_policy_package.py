"""The VPDD policy package: config strictness and versions, save_pretrained / from_pretrained round trips."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from vidpolicy.common.errors import VidpolicyError
from vidpolicy.policies.vpdd import VPDDConfig, VPDDPolicy
from vidpolicy.policies.vpdd.configuration_vpdd import CONFIG_NAME, FORMAT_VERSION


def _obs(k: int) -> dict:
    rng = np.random.default_rng(k)
    return {"image": rng.integers(0, 255, (32, 32, 3), dtype=np.uint8), "state": rng.normal(size=39),
            "instruction": "reach the goal position with the gripper"}


def test_config_round_trip_and_strictness(tmp_path):
    cfg = VPDDConfig(action_dim=26, state_dim=7, horizon=8, execute=4, top_r=None, yuv420=True)
    cfg.save(tmp_path)
    assert VPDDConfig.load(tmp_path) == cfg
    saved = json.loads((tmp_path / CONFIG_NAME).read_text())
    (tmp_path / CONFIG_NAME).write_text(json.dumps({**saved, "horizn": 4}))
    with pytest.raises(VidpolicyError, match="horizn"):
        VPDDConfig.load(tmp_path)
    (tmp_path / CONFIG_NAME).write_text(json.dumps({**saved, "format_version": FORMAT_VERSION + 1}))
    with pytest.raises(VidpolicyError, match=f"format_version {FORMAT_VERSION + 1}.*up to {FORMAT_VERSION}"):
        VPDDConfig.load(tmp_path)
    with pytest.raises(VidpolicyError, match="execute 9: must be 1..8"):
        cfg.with_overrides(execute=9)
    with pytest.raises(VidpolicyError, match="guidance 2.0: needs the video model as pre-trained"):
        VPDDConfig(video_frozen=False, guidance=2.0)
    with pytest.raises(VidpolicyError, match="no policy_config.json"):
        VPDDConfig.load(tmp_path / "elsewhere")
    assert cfg.with_overrides(execute=None, sampling_steps=3) == VPDDConfig(
        action_dim=26, state_dim=7, horizon=8, execute=4, top_r=None, yuv420=True, sampling_steps=3)


def test_save_pretrained_round_trip_acts_the_same(policy, tmp_path):
    a = VPDDPolicy.from_pretrained(policy, seed=5)
    copy = a.save_pretrained(tmp_path / "copy")
    b = VPDDPolicy.from_pretrained(copy, seed=5)
    assert b.config == a.config
    for name in ("tokenizer", "video", "action"):
        sa, sb = getattr(a, name).state_dict(), getattr(b, name).state_dict()
        assert sa.keys() == sb.keys() and all(np.array_equal(sa[k].numpy(), sb[k].numpy()) for k in sa), name
    assert dict(a.scheduler.config) == dict(b.scheduler.config)
    a.reset(), b.reset()
    for k in range(3):
        assert np.array_equal(a.select_action(_obs(k)), b.select_action(_obs(k)))
    chunk = b.predict_action_chunk(_obs(9))
    assert chunk.shape == (b.config.horizon, b.action_dim)


def test_a_policy_directory_without_its_config_is_refused_by_name(policy, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(policy, old)
    (old / CONFIG_NAME).unlink()
    with pytest.raises(VidpolicyError, match=f"{old}: not a policy directory of this vidpolicy"):
        VPDDPolicy.from_pretrained(old)


def test_processor_takes_a_camera_of_any_size_to_the_policy_square():
    from vidpolicy.finetune.binning import ActionBinner
    from vidpolicy.policies.vpdd import VPDDProcessor

    proc = VPDDProcessor(ActionBinner.fit(np.random.default_rng(0).normal(size=(100, 4))), None, 32, yuv420=False)
    wide = np.full((48, 64, 3), 128, np.uint8)
    wide[:, :6] = wide[:, -6:] = (255, 0, 0)  # red borders outside the centre square
    out = proc.frame(wide)
    assert out.shape == (32, 32, 3) and np.abs(out.astype(int) - 128).max() <= 2  # resized, then cropped
    square = np.random.default_rng(1).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    assert np.array_equal(proc.frame(square), square)  # the policy's own size passes untouched
    with pytest.raises(VidpolicyError, match=r"shape \(32, 32\)"):
        proc.frame(square[..., 0])
