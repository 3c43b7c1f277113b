"""Stage 3, training: binning, robot tokens, the loss falls, resume, the action heads, what trains."""

from __future__ import annotations

import json

import numpy as np
import torch

from vidpolicy.finetune.binning import ActionBinner
from _util import policy_obs, run_cli


def test_binning_round_trip_within_half_a_bin():
    rng = np.random.default_rng(0)
    acts = np.concatenate([rng.normal(0, 0.3, (5000, 3)), rng.choice([-1.0, 1.0], (5000, 1))], 1)
    b = ActionBinner.fit(acts, bins=48)  # the paper's decoding: midpoints
    assert b.bins_per_dim[:3] == [48, 48, 48] and b.bins_per_dim[3] == 2
    idx = b.encode(acts)
    back = b.decode(idx)
    for d in range(3):
        edges = np.concatenate([[acts[:, d].min()], b.edges[d], [acts[:, d].max()]])
        half = (edges[idx[:, d] + 1] - edges[idx[:, d]]) / 2
        assert np.all(np.abs(back[:, d] - acts[:, d]) <= half + 1e-6)
    assert np.array_equal(back[:, 3], acts[:, 3])


def test_bins_decode_to_their_mean_keeping_saturated_actions_at_the_limit(tmp_path):
    """Scripted demos saturate (here 12% of the actions are exactly +1): the top quantile bin stretches far below
    the limit and its midpoint decodes +1 as much less. The mean of each bin's training actions keeps +1 near +1 and
    has the least squared error of any point in the bin."""
    rng = np.random.default_rng(1)
    acts = np.where(rng.random((4000, 1)) < 0.12, 1.0, rng.normal(0, 0.25, (4000, 1)))
    mean, mid = ActionBinner.fit(acts, bins=48, centers="mean"), ActionBinner.fit(acts, bins=48)
    assert np.array_equal(mean.edges[0], mid.edges[0])  # the same tokens: only their decoding differs
    sat = mean.encode(np.array([[1.0]]))
    assert mean.decode(sat)[0, 0] > 0.99 and mid.decode(sat)[0, 0] < 0.9
    err = {name: ((b.decode(b.encode(acts)) - acts) ** 2).mean() for name, b in (("mean", mean), ("mid", mid))}
    assert err["mean"] < 0.8 * err["mid"], err
    assert abs(np.abs(mean.decode(mean.encode(acts))).mean() - np.abs(acts).mean()) < 1e-3  # no shrinkage
    mean.save(tmp_path / "binning.json")
    back = ActionBinner.load(tmp_path / "binning.json")
    assert back.rule == "mean" and np.array_equal(back.centers[0], mean.centers[0])


def test_a_chunks_targets_are_time_major_bins_and_standardised_values():
    """The LeRobot plugin and the GPU check hand the action model a chunk's targets flat: step h, dimension d at
    column h * D + d, as `finetune`'s dataset lays them out."""
    rng = np.random.default_rng(2)
    b = ActionBinner.fit(rng.normal(0, 0.3, (2000, 3)), bins=16)
    chunk = rng.normal(0, 0.3, (2, 5, 3))
    bins, z = b.targets(chunk)
    assert bins.shape == z.shape == (2, 15) and bins.dtype == torch.int64 and z.dtype == torch.float32
    assert np.array_equal(bins.numpy().reshape(2, 5, 3), b.encode(chunk))
    assert np.allclose(b.denormalize(z.numpy().reshape(2, 5, 3)), np.clip(chunk, b.decode(np.zeros((1, 3), int)),
                                                                            b.decode(np.full((1, 3), 15))), atol=1e-5)


def test_expected_bin_centres():
    b = ActionBinner([[0.0], [0.5, 1.5]], [[-1.0, 1.0], [0.0, 1.0, 2.0]])  # dims of 2 and 3 bins, K = 3
    probs = np.array([[[0.25, 0.75, 0.9], [0.2, 0.3, 0.5]]])  # dim 0's third class is padding: ignored
    assert np.allclose(b.expected(probs), [[0.25 * -1 + 0.75 * 1, 0.3 * 1 + 0.5 * 2]])
    one_hot = np.eye(3)[[[1, 2]]]
    assert np.allclose(b.expected(one_hot), b.decode(np.array([[1, 2]])))  # a sure belief decodes as the mode


def test_robot_tokens_are_the_clips_ending_at_every_step(policy):
    """Fine-tuning reads the dataset through `vidpolicy tokenize --every-step`: clip t of an episode is the tokenizer's
    code of the frames t-T+1..t, the first frame repeated before the episode starts."""
    from vidpolicy.common.pretrained import load_model
    from vidpolicy.datasets.clips import to_unit_range
    from vidpolicy.datasets.robot import RobotEpisodes, clip_indices
    from vidpolicy.datasets.tokens import TokenDataset
    from vidpolicy.tokenizer.model import VideoTokenizer

    tok = load_model(VideoTokenizer, policy, "tokenizer")
    eps, store = RobotEpisodes(policy.parent / "demos", size=tok.config.size), TokenDataset(policy / "robot_tokens")
    rows = store.rows_by_source()
    assert sorted(rows) == [eps.source(i) for i in range(len(eps))] and store.meta["pad_start"]
    n, frames = eps.episodes[1].length, tok.config.frames
    got = store.gather(rows[eps.source(1)])
    assert len(got) == n
    steps = [0, 1, frames, n - 1]
    clips = torch.stack([to_unit_range(eps.frames(1)[clip_indices(t, frames, n)[0]]) for t in steps])
    with torch.no_grad():
        want = tok.encode(clips).numpy()
    assert np.array_equal(got[steps], want)


def test_auto_action_head_follows_the_action_dimension(policy):
    from vidpolicy.policies.vpdd import VPDDConfig
    from vidpolicy.policies.vpdd.configuration_vpdd import resolve_action_head

    assert json.loads((policy / "finetune_config.json").read_text())["action_head"] == "auto"
    assert VPDDConfig.load(policy).action_head == "tokens"  # 4-d Meta-World actions: the paper's head, saved decided
    assert [resolve_action_head("auto", d) for d in (4, 8, 9, 26)] == ["tokens", "tokens", "regression", "regression"]
    assert resolve_action_head("tokens", 26) == "tokens" and VPDDConfig(action_dim=26).head == "regression"


def test_finetune_loss_falls(policy):
    rows = [json.loads(x) for x in (policy / "logs" / "metrics.jsonl").read_text().splitlines()]
    # the x_0 cross-entropy of the action tokens (the VB term swings with the sampled timesteps)
    assert np.mean([r["action_ce"] for r in rows[-3:]]) < 0.93 * rows[0]["action_ce"]
    for name in ("tokenizer", "video_model", "action_model", "scheduler", "binning.json", "policy_config.json",
                 "config.json", "loss.png", "eval.json"):
        assert (policy / name).exists(), name
    ev = json.loads((policy / "eval.json").read_text())
    # the first action's bins on the held-out episode: better than always predicting the training mean
    assert ev["samples"] > 0 and ev["bin_accuracy"] > ev["mean_baseline"]["bin_accuracy"], ev
    # the bar beside it: the training mean, scored the same way (normalised by the action variance: about 1)
    assert 0.05 < ev["mean_baseline"]["normalized_mse"] < 20 and 0 <= ev["mean_baseline"]["bin_accuracy"] <= 1


def test_kill_finetune_then_rerun_resumes(policy, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from _util import ROOT

    d = policy.parent
    args = ["finetune", "--pretrained", str(d / "pre"), "--dataset", str(d / "demos"), "--out", str(tmp_path / "p"),
            "--width", "32", "--depth", "1", "--max-steps", "400", "--batch-size", "16", "--save-every", "10",
            "--sampling-steps", "4"]
    proc = subprocess.Popen([sys.executable, "-m", "vidpolicy", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    t0 = time.time()
    while not (tmp_path / "p" / "checkpoints" / "step-0000020").exists():
        assert proc.poll() is None and time.time() - t0 < 120
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "p" / "action_model").exists()
    r = run_cli(*args[:-6], "--max-steps", "30", *args[-4:])
    assert r.returncode == 0, r.stderr[-1500:]
    assert "resumed from" in r.stdout + r.stderr and (tmp_path / "p" / "action_model").exists()


def test_policy_with_other_action_dim_is_refused(policy, tmp_path):
    import shutil

    from _util import shared

    g1 = shared("robot/g1_pick_bottle")
    out = tmp_path / "p"
    shutil.copytree(policy, out)
    r = run_cli("finetune", "--pretrained", str(policy.parent / "pre"), "--dataset", str(g1), "--out", str(out),
                "--max-steps", "1")
    assert r.returncode == 2 and "action_dim 4" in r.stderr and "action_dim 26" in r.stderr


def test_continuous_regression_head(policy, tmp_path):
    from vidpolicy.policies.vpdd import VPDDPolicy

    d = policy.parent
    out = tmp_path / "reg"
    r = run_cli("finetune", "--pretrained", str(d / "pre"), "--dataset", str(d / "demos"), "--out", str(out),
                "--action-head", "regression", "--width", "32", "--depth", "1", "--max-steps", "60",
                "--batch-size", "16", "--log-every", "5", "--lr", "3e-3", "--warmup-steps", "5",
                "--sampling-steps", "3")
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [json.loads(x) for x in (out / "logs" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["action_mse"] < 0.7 * rows[0]["action_mse"]
    p = VPDDPolicy.from_pretrained(out)
    a = p.select_action(policy_obs())
    assert a.shape == (4,) and np.all(np.abs(a) <= 1) and p.imagined_frames().shape == (4, 32, 32, 3)


def test_state_norm_round_trip(tmp_path):
    from vidpolicy.finetune.state import StateNorm

    rng = np.random.default_rng(0)
    states = np.concatenate([rng.normal(3, 2, (500, 3)), np.zeros((500, 1))], 1)
    norm = StateNorm.fit(states)
    z = norm(states)
    assert np.allclose(z[:, :3].mean(0), 0, atol=1e-5) and np.allclose(z[:, :3].std(0), 1, atol=1e-4)
    assert np.all(z[:, 3] == 0)  # a constant slot maps to 0
    norm.save(tmp_path / "s.json")
    assert np.array_equal(StateNorm.load(tmp_path / "s.json")(states), z)


def test_video_lr_and_detach_decide_what_moves_the_video_model(policy, tmp_path):
    """--video-lr 0 keeps the pre-trained video model exactly although it trains; with no video loss the
    action loss alone moves it (the video learning rate is live), and --detach-video-features stops that."""
    from vidpolicy.common.pretrained import load_model
    from vidpolicy.pretrain.model import FutureDenoiser

    d = policy.parent
    pre = load_model(FutureDenoiser, d / "pre").state_dict()
    cases = {"lr0": (["--video-lr", "0"], False),
             "action-only": (["--video-lr", "3e-3", "--video-loss-weight", "0"], True),
             "detached": (["--video-lr", "3e-3", "--video-loss-weight", "0", "--detach-video-features"], False)}
    for name, (flags, moves) in cases.items():
        out = tmp_path / name
        r = run_cli("finetune", "--pretrained", str(d / "pre"), "--dataset", str(d / "demos"), "--out", str(out),
                    "--train-video", *flags, "--width", "32", "--depth", "1", "--max-steps", "3", "--batch-size", "4",
                    "--warmup-steps", "1", "--sampling-steps", "2")
        assert r.returncode == 0, r.stderr[-2000:]
        after = load_model(FutureDenoiser, out, "video_model").state_dict()
        moved = sum(not torch.equal(after[k], pre[k]) for k in pre)
        assert (moved > len(pre) // 2) if moves else moved == 0, (name, moved, len(pre))


def test_two_process_finetune_with_parameters_the_loss_never_reaches(policy, tmp_path):
    from _util import torchrun

    # from scratch the video model trains (its null instruction unused); the regression head skips token_embed
    r = torchrun("-m", "vidpolicy", "finetune", "--pretrained", str(policy.parent / "pre"), "--dataset",
                 str(policy.parent / "demos"), "--out", str(tmp_path / "ddp"), "--width", "32", "--depth", "1",
                 "--max-steps", "2", "--batch-size", "4", "--action-head", "regression", "--from-scratch")
    assert r.returncode == 0, r.stderr[-2000:]  # DDP refused to reduce over the unused ones before
    assert (tmp_path / "ddp" / "policy_config.json").exists()


def test_a_policy_redecoded_by_the_other_bin_rule_keeps_its_tokens(policy, tmp_path):
    """benchmarks/bin_centers.py compares the two decodings on one trained policy: the copy's bins are refitted on
    the same training actions (the held-out episode left out), so the edges and the tokens stay."""
    import sys

    from _util import ROOT

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bin_centers import redecoded

    copy = redecoded(policy, tmp_path, "mean")
    mine, theirs = ActionBinner.load(policy / "binning.json"), ActionBinner.load(copy / "binning.json")
    assert (mine.rule, theirs.rule) == ("midpoint", "mean")
    assert all(np.array_equal(a, b) for a, b in zip(mine.edges, theirs.edges))
    assert any(not np.allclose(a, b) for a, b in zip(mine.centers, theirs.centers))


def test_the_video_model_trains_from_scratch_or_when_asked():
    from vidpolicy.finetune.config import FinetuneConfig

    trains = {(s, t): FinetuneConfig(from_scratch=s, train_video=t).trains_video for s in (False, True)
              for t in (False, True)}
    assert trains == {(False, False): False, (False, True): True, (True, False): True, (True, True): True}
