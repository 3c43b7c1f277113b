"""Scoring an imagined future against the truth, beside copying the last history clip: offline (pretrain/foresight.py)
and in a policy's own episodes (benchmarks/foresight.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidpolicy.pretrain.foresight import copy_last_clip, future_scores


def test_copying_the_history_scores_what_stood_still():
    # a toy clip of 8 tokens: a scene where 6 of 8 latent cells stay, the last 2 change
    history = torch.tensor([[9, 9, 9, 9, 1, 2, 3, 4, 5, 6, 7, 8]])  # the last 8 tokens are the last clip
    truth = torch.tensor([[1, 2, 3, 4, 5, 6, 0, 0]])
    copy = copy_last_clip(history, 8)
    assert copy.tolist() == [[1, 2, 3, 4, 5, 6, 7, 8]]
    assert future_scores(copy, truth)["token_accuracy"] == pytest.approx(6 / 8)
    assert future_scores(truth, truth)["token_accuracy"] == 1.0
    with pytest.raises(ValueError, match="shorter than one clip"):
        copy_last_clip(history, 13)


def test_frames_add_a_psnr_that_ranks_closer_futures_higher():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    near = np.clip(truth.astype(int) + 4, 0, 255).astype(np.uint8)
    far = np.clip(truth.astype(int) + 40, 0, 255).astype(np.uint8)
    t = torch.zeros(1, 8, dtype=torch.long)
    s_near, s_far = future_scores(t, t, near, truth), future_scores(t, t, far, truth)
    assert 30 < s_near["psnr"] < 37 and s_far["psnr"] < s_near["psnr"] - 15
    assert future_scores(t, t, truth, truth)["psnr"] == float("inf")
    with pytest.raises(ValueError, match="predicted tokens"):
        future_scores(t, torch.zeros(1, 4, dtype=torch.long))


class _StepPolicy:
    """Frames whose pixels all hold min(step, 10) (the scene moves, then stands still); a clip's tokens are its frames'
    values. Plans every 2 steps and imagines the true clip ``gap`` steps ahead, computed from the rule."""

    device, T, gap, execute = "cpu", 2, 3, 2

    def __init__(self):
        from types import SimpleNamespace

        self.tokenizer = SimpleNamespace(config=SimpleNamespace(frames=self.T), encode=lambda x: (
            (x[:, 0, :, 0, 0] + 0.5) * 255).round().long())
        self.processor = SimpleNamespace(frame=lambda image: image)

    def reset(self):
        self.plans, self.step = 0, -1

    def select_action(self, observation):
        self.step += 1
        if self.step % self.execute == 0:
            self.plans += 1
            end = self.step + self.gap
            self.imagined_tokens = torch.tensor([[min(j, 10) for j in range(end - self.T + 1, end + 1)]])
        return np.zeros(4, np.float32)

    def decode_tokens(self, tokens):
        return np.broadcast_to(tokens.numpy().astype(np.uint8)[:, :, None, None, None], (*tokens.shape, 4, 4, 3))


def test_closed_loop_foresight_scores_each_plan_against_the_clip_it_imagined():
    import sys

    from _util import ROOT

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from foresight import Watched, clip_ending, score_episode

    frames = [np.full((4, 4, 3), min(k, 10), np.uint8) for k in range(16)]
    assert clip_ending(frames, 0, 3)[:, 0, 0, 0].tolist() == [0, 0, 0]  # the first frame stands in before the start
    w = Watched(_StepPolicy())
    w.reset()
    for f in frames:
        w.select_action({"image": f})
    rows = score_episode(w, _StepPolicy.gap)
    assert [r["step"] for r in rows] == [0, 2, 4, 6, 8, 10, 12]  # t + gap < 16: the futures the episode reached
    assert all(r["imagined_token_accuracy"] == 1.0 and r["imagined_psnr"] == float("inf") for r in rows)
    # copying the present is right once the scene stands still, wrong while it moves
    assert [r["copy_present_token_accuracy"] for r in rows] == [0, 0, 0, 0, 0, 0.5, 1]  # t = 10: [9, 10] vs [10, 10]


def test_action_errors_compare_a_plan_with_the_experts_actions():
    import sys

    from _util import ROOT

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from _imagination import action_errors

    expert = np.array([[[1.0, -1.0], [0.5, 0.0]], [[-1.0, 1.0], [0.0, 0.5]]])  # (n = 2, H = 2, D = 2)
    slow = action_errors(expert / 2, expert, var=np.array([1.0, 0.5]))
    # first actions' errors (0.5^2 / 1, 0.5^2 / 0.5) in each sample; second actions' (0.25^2, 0) and (0, 0.25^2 / 0.5)
    assert slow["first_action"] == pytest.approx((0.25 + 0.5) / 2)
    assert slow["chunk"] == pytest.approx((2 * (0.25 + 0.5) + 0.0625 + 0.125) / 8)
    assert slow["magnitude"] == pytest.approx(0.5)  # moving at half the expert's speed
    assert action_errors(expert, expert, np.ones(2)) == {"first_action": 0.0, "chunk": 0.0, "magnitude": 1.0}


def test_the_true_future_is_the_clip_the_expert_then_shows_and_the_episode_is_untouched():
    import sys

    from _util import ROOT

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from oracle_future import expert_future

    from vidpolicy.envs.metaworld import MetaWorldEnv

    env = MetaWorldEnv("push", size=32, max_steps=12)
    obs = env.reset(5)
    expert, seen, predicted = env.expert(), [obs["image"]], {}
    for step in range(12):  # the expert drives; at every step, the clip 4 steps ahead (2 frames), from a branch
        predicted[step] = expert_future(env, seen, gap=4, frames=2)
        obs, *_ = env.step(expert(obs))
        seen.append(obs["image"])
    for step, clip in predicted.items():  # past the step limit (12): the episode's last clip
        end = min(step + 4, 12)
        assert np.array_equal(clip, np.stack(seen[end - 1: end + 1])), step
    assert not np.array_equal(predicted[0], predicted[6])  # the scene moved: the check can fail
    env.close()
