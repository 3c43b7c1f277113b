"""Stage 3, acting: what the action model reads (decoding, a given future, --act-on), actions in bounds, planning
cadence, guidance, live frames as the demos' pixels, reload determinism, the robot state, a rollout."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from _util import policy_obs, run_cli


def test_mean_decoding_acts_on_the_belief_not_the_sample(policy):
    from vidpolicy.policies.vpdd import VPDDPolicy

    acts = {}
    for decode in ("mode", "mean"):
        p = VPDDPolicy.from_pretrained(policy, action_decode=decode)
        hist = torch.randint(0, p.video.config.codebook_size, (3, p.video.tokens_per_clip),
                             generator=torch.Generator().manual_seed(0))
        state = torch.zeros(3, p.config.state_dim)
        _, acts[decode] = p.plan(hist, p.text(["reach"] * 3), generator=torch.Generator().manual_seed(0), state=state)
    centers = p.processor.binner.centers
    on_centre = [np.isclose(acts["mode"][..., d, None], centers[d]).any(-1).all() for d in range(4)]
    assert all(on_centre)  # the paper's decoding acts on bin centres
    lo, hi = np.array([c[0] for c in centers]), np.array([c[-1] for c in centers])
    assert np.all(acts["mean"] >= lo - 1e-6) and np.all(acts["mean"] <= hi + 1e-6)
    assert not np.allclose(acts["mean"], acts["mode"])  # an unsure belief lands between centres


def test_a_given_future_is_what_the_action_model_reads(policy):
    """`plan(future=...)`, the diagnosis: at every step the action model reads the video model's features of that
    future noised to the step's t (or to ``future_t``), not of the imagined one."""
    from vidpolicy.policies.vpdd import VPDDPolicy

    p = VPDDPolicy.from_pretrained(policy)
    K, n = p.video.config.codebook_size, p.video.tokens_per_clip
    hist, future = (torch.randint(0, K, (2, n), generator=torch.Generator().manual_seed(s)) for s in (0, 1))
    calls: list[tuple[torch.Tensor, torch.Tensor]] = []
    read: list[torch.Tensor] = []
    denoise, action_forward = p.video.denoise, p.action.forward

    def spy_denoise(x, t, ctx):
        out = denoise(x, t, ctx)
        calls.append((x.clone(), out[1]))
        return out

    def spy_action(a_t, t, feats, *args):
        read.append(feats)
        return action_forward(a_t, t, feats, *args)

    p.video.denoise, p.action.forward = spy_denoise, spy_action
    state = torch.zeros(2, p.config.state_dim)
    plans = [p.plan(hist, p.text(["reach"] * 2), generator=torch.Generator().manual_seed(3), state=state,
                    future=f)[1] for f in (future, future, future.roll(1, 0))]
    steps = p.config.sampling_steps
    assert len(calls) == 3 * 2 * steps and len(read) == 3 * steps  # one extra video pass per step
    for k in range(steps):
        shown, feats = calls[2 * k + 1]
        assert read[k] is feats  # the given future's features, not the imagined one's (calls[2 * k])
    last_shown = calls[2 * steps - 1][0]  # the given future, part masked or replaced at the last step's t
    assert (last_shown == future).float().mean() > 0.5 > 0.2 > (last_shown == future.roll(1, 0)).float().mean()
    assert np.array_equal(plans[0], plans[1])  # reproducible from the generator
    assert torch.equal(read[steps - 1], read[2 * steps - 1])  # the same future read the same way
    assert not torch.equal(read[steps - 1], read[3 * steps - 1])  # another future, another view of it
    calls.clear()
    p.plan(hist, p.text(["reach"] * 2), generator=torch.Generator().manual_seed(3), state=state, future=future,
           future_t=0)
    assert all((calls[2 * k + 1][0] == future).float().mean() > 0.99 for k in range(steps))  # all of it, each step


def _act_on_policy(policy, out, act_on: str):
    """A tiny policy fine-tuned with ``--act-on act_on``, and the list its action model appends the features it
    reads to."""
    from vidpolicy.policies.vpdd import VPDDPolicy

    d = policy.parent
    r = run_cli("finetune", "--pretrained", str(d / "pre"), "--dataset", str(d / "demos"), "--out", str(out),
                "--width", "32", "--depth", "1", "--max-steps", "4", "--batch-size", "4", "--sampling-steps", "3",
                "--act-on", act_on)
    assert r.returncode == 0, r.stderr[-2000:]
    p = VPDDPolicy.from_pretrained(out)
    assert p.config.act_on == act_on and p.config.video_frozen  # pre-trained, no --train-video: the paper's recipe
    read: list[torch.Tensor] = []
    action_forward = p.action.forward
    p.action.forward = lambda a_t, t, feats, *args: read.append(feats) or action_forward(a_t, t, feats, *args)
    return p, read


def test_acting_on_the_imagined_clip_reads_all_of_it(policy, tmp_path):
    """``--act-on imagined``: the clip is imagined whole first, and at every action step the action model reads
    the video model's features of that whole clip (t = 0), as it was trained on the true future's."""
    from vidpolicy.common.device import bf16

    p, read = _act_on_policy(policy, tmp_path / "p", "imagined")
    hist = torch.randint(0, p.video.config.codebook_size, (2, p.video.tokens_per_clip),
                         generator=torch.Generator().manual_seed(0))
    text, state = p.text(["reach"] * 2), torch.zeros(2, p.config.state_dim)
    clip, actions = p.plan(hist, text, generator=torch.Generator().manual_seed(1), state=state)
    assert actions.shape == (2, p.config.horizon, 4) and len(read) == 3
    assert all(f is read[0] for f in read)  # one view of the finished clip at every step
    with bf16(p.device), torch.no_grad():
        ctx = p.video.context(hist, p.video.text_input(text))
        assert torch.equal(read[0], p.video.denoise(clip, torch.zeros(2, dtype=torch.long), ctx)[1])
    # a given future (the diagnosis) is read instead, and nothing is imagined: the clip returned is that future
    other, denoise, passes = clip.roll(1, 0), p.video.denoise, []
    p.video.denoise = lambda *a: passes.append(1) or denoise(*a)
    read.clear()
    given, _ = p.plan(hist, text, generator=torch.Generator().manual_seed(1), state=state, future=other)
    p.video.denoise = denoise
    assert torch.equal(given, other) and len(passes) == 1  # one video pass: the given clip's features
    with bf16(p.device), torch.no_grad():
        assert torch.equal(read[0], p.video.denoise(other, torch.zeros(2, dtype=torch.long), ctx)[1])
    # training: whatever the actions' t, the action model reads the true future's features at t = 0
    from vidpolicy.finetune.objective import JointDenoiser

    joint = JointDenoiser(p.video, p.action, train_video=False, act_on="imagined")
    zero = torch.zeros(2, dtype=torch.long)
    fut, t = torch.randint(0, p.video.config.codebook_size, hist.shape), torch.tensor([70, 5])
    masked = torch.full((2, p.config.horizon * 4), p.action.num_classes)
    read.clear()
    with torch.no_grad():
        joint(p.scheduler.add_noise(fut, t, p.video.config.codebook_size), masked, t, hist, text, state, future=fut)
        assert torch.equal(read[0], p.video.denoise(fut, zero, p.video.context(hist, p.video.text_input(text)))[1])


def test_acting_on_the_history_imagines_nothing(policy, tmp_path):
    """``--act-on history``: the action model reads the video model's features of the future all masked (t = T),
    the same at every step and in training, and no clip is imagined (the plan returns the present)."""
    from vidpolicy.common.device import bf16
    from vidpolicy.finetune.objective import JointDenoiser, LossWeights, joint_loss
    from vidpolicy.pretrain.timesteps import TimestepSampler

    p, read = _act_on_policy(policy, tmp_path / "p", "history")
    K, T = p.video.config.codebook_size, p.video.config.num_timesteps
    hist = torch.randint(0, K, (2, p.video.tokens_per_clip), generator=torch.Generator().manual_seed(0))
    text, state = p.text(["reach"] * 2), torch.zeros(2, p.config.state_dim)
    clip, actions = p.plan(hist, text, generator=torch.Generator().manual_seed(1), state=state)
    assert torch.equal(clip, hist) and actions.shape == (2, p.config.horizon, 4) and len(read) == 3
    with bf16(p.device), torch.no_grad():
        ctx = p.video.context(hist, p.video.text_input(text))
        masked_view = p.video.denoise(torch.full_like(hist, K), torch.full((2,), T), ctx)[1]
    assert all(torch.equal(f, masked_view) for f in read)
    read.clear()
    n = p.config.horizon * 4  # training reads the same view, whatever the actions' t and the true future
    batch = (hist, torch.randint(0, K, hist.shape), torch.zeros(2, n, dtype=torch.long), torch.zeros(2, n),
             torch.ones(2, n, dtype=torch.bool), state, text)
    with torch.no_grad():
        joint_loss(JointDenoiser(p.video, p.action, train_video=False, act_on="history"), p.scheduler,
                   TimestepSampler(T, importance=False), batch, False, False, LossWeights())
        ctx = p.video.context(hist, p.video.text_input(text))
        assert torch.allclose(read[0].float(), p.video.denoise(torch.full_like(hist, K), torch.full((2,), T),
                                                               ctx)[1].float())


def test_select_action_shape_and_bounds(policy):
    from vidpolicy.policies.vpdd import VPDDPolicy

    p = VPDDPolicy.from_pretrained(policy)
    p.reset()
    for k in range(3):
        a = p.select_action(policy_obs(k))
        assert a.shape == (4,) and a.dtype == np.float32
        lo = np.array([c[0] for c in p.processor.binner.centers])
        hi = np.array([c[-1] for c in p.processor.binner.centers])
        assert np.all(a >= lo - 1e-6) and np.all(a <= hi + 1e-6) and np.all(np.abs(a) <= 1)
    assert p.imagined_frames().shape == (4, 32, 32, 3)
    # a camera of another size is brought to the policy's 32x32 as the demonstrations' frames were
    assert p.select_action({**policy_obs(), "image": np.zeros((64, 48, 3), np.uint8)}).shape == (4,)
    assert p._frames[-1].shape == (1, 32, 32, 3)  # one robot


def test_execute_sets_how_often_the_policy_plans(policy):
    from vidpolicy.policies.vpdd import VPDDPolicy

    for execute, plans in ((1, 8), (2, 4), (4, 2)):  # 8 steps with chunks of 4 actions
        p = VPDDPolicy.from_pretrained(policy, execute=execute)
        calls, plan = [], p.plan
        p.plan = lambda *a, **k: calls.append(1) or plan(*a, **k)
        p.reset()
        for k in range(8):
            p.select_action(policy_obs(k))
        assert len(calls) == plans, execute
    with pytest.raises(Exception, match="must be 1..4"):
        VPDDPolicy.from_pretrained(policy, execute=5)


def test_guidance_denoises_against_the_null_instruction(policy, tmp_path):
    import shutil

    from vidpolicy.policies.vpdd import VPDDPolicy

    hist = torch.randint(0, 32, (3, 64))

    def imagine(g):
        p = VPDDPolicy.from_pretrained(policy, guidance=g)
        calls, denoise = [], p.video.denoise
        p.video.denoise = lambda x, t, ctx: calls.append(ctx) or denoise(x, t, ctx)
        video = p.plan(hist, p.text(["reach the goal position with the gripper"] * 3), steps=4,
                       generator=torch.Generator().manual_seed(0), state=p.processor.state(np.zeros((3, 39))))[0]
        return video, calls

    (plain, plain_calls), (unit, _), (guided, guided_calls) = (imagine(g) for g in (None, 1.0, 4.0))
    assert torch.equal(plain, unit) and len(plain_calls) == 4  # scale 1 is no guidance: one pass per step
    assert len(guided_calls) == 8 and guided.shape == plain.shape  # and a pass with the null instruction
    assert guided_calls[0] is not guided_calls[1]
    scratch = tmp_path / "scratch"
    shutil.copytree(policy, scratch)
    cfg = json.loads((scratch / "policy_config.json").read_text())
    (scratch / "policy_config.json").write_text(json.dumps({**cfg, "video_frozen": False}))
    with pytest.raises(Exception, match="guidance 2.0: needs the video model as pre-trained"):
        VPDDPolicy.from_pretrained(scratch, guidance=2.0)


def test_guidance_follows_the_formula_on_a_toy_denoiser(policy):
    """Two classes the conditional and unconditional passes rank differently: guidance at scale g picks the class of
    log_softmax(u + g (c - u)) computed by hand, no guidance the conditional mode (r = 0: the mode at every step)."""
    from vidpolicy.policies.vpdd import VPDDPolicy
    from vidpolicy.pretrain.sample import guide

    c = torch.full((32,), -20.0)
    c[:2] = torch.tensor([2.0, 1.8])  # conditional: class 0, narrowly
    u = torch.full((32,), -20.0)
    u[:2] = torch.tensor([2.5, 1.0])  # unconditional: class 0, widely
    by_hand = u + 4.0 * (c - u)  # class 0: 0.5, class 1: 4.2
    assert torch.allclose(guide(c, u, 4.0), by_hand - torch.logsumexp(by_hand, -1))
    hist = torch.randint(0, 32, (2, 64))

    def imagine(g):
        p = VPDDPolicy.from_pretrained(policy, guidance=g)
        p.config.top_r = 0.0
        calls, denoise = [], p.video.denoise

        def toy(x, t, ctx):  # each step: the conditional pass first, then (guided) the unconditional one
            feats = denoise(x, t, ctx)[1]
            logits = u if g != 1.0 and len(calls) % 2 else c
            calls.append(t)
            return torch.log_softmax(logits, -1).expand(*x.shape, 32), feats

        p.video.denoise = toy
        return p.plan(hist, p.text(["reach"] * 2), steps=4, generator=torch.Generator().manual_seed(0),
                      state=p.processor.state(np.zeros((2, 39))))[0]

    # class 0 scores 2.5 - 0.5 g, class 1 scores 1.0 + 0.8 g: they cross at g = 15 / 13
    for g, mode in ((1.0, 0), (1.1, 0), (1.2, 1), (4.0, 1)):
        assert (imagine(g) == mode).all(), g


def test_live_frames_pass_through_the_demonstrations_pixel_format(policy):
    from vidpolicy.common.media import yuv420_round_trip
    from vidpolicy.policies.vpdd import VPDDPolicy

    flat = np.full((32, 32, 3), (90, 140, 60), np.uint8)
    assert np.abs(yuv420_round_trip(flat).astype(int) - flat).max() <= 3  # one colour survives
    lines = np.full((32, 32, 3), 128, np.uint8)
    lines[:, ::2] = (255, 0, 0)  # red columns one pixel wide: their colour is averaged with the grey beside them
    back = yuv420_round_trip(lines).astype(int)
    assert back[:, ::2, 0].mean() < 230 and back[:, ::2, 1].mean() > 25
    # on by default: the fixture's demonstrations were recorded as H.264 yuv420p (policy_config.json says so)
    saved = json.loads((policy / "policy_config.json").read_text())
    assert saved["observation_pix_fmt"] == "yuv420p" and saved["yuv420"] is True
    p = VPDDPolicy.from_pretrained(policy)
    p.reset()
    obs = policy_obs(3)
    p.select_action(obs)
    assert p.processor.yuv420 and np.array_equal(p._frames[-1][0], yuv420_round_trip(obs["image"]))
    raw = VPDDPolicy.from_pretrained(policy, yuv420=False)
    raw.select_action(obs)
    assert np.array_equal(raw._frames[-1][0], obs["image"])


def test_reloaded_policy_gives_identical_actions(policy):
    from vidpolicy.policies.vpdd import VPDDPolicy

    runs = []
    for _ in range(2):
        p = VPDDPolicy.from_pretrained(policy, seed=7)
        p.reset()
        runs.append(np.stack([p.select_action(policy_obs(k)) for k in range(4)]))
    assert np.array_equal(runs[0], runs[1])


def test_rollout_with_the_policy(policy, tmp_path):
    r = run_cli("rollout", "--policy", str(policy), "--tasks", "reach", "--episodes", "1", "--max-steps", "8",
                "--out", str(tmp_path / "roll"))
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((tmp_path / "roll" / "results.json").read_text())
    assert res["reach-v3"]["episodes"] == 1 and 0 <= res["mean_success_rate"] <= 1
    assert len(list((tmp_path / "roll" / "videos").glob("*.mp4"))) == 1


def test_policy_reads_the_robot_state(policy):
    from vidpolicy.policies.vpdd import VPDDPolicy

    p = VPDDPolicy.from_pretrained(policy, seed=3)
    assert p.processor.state_norm.dim == 39 and p.action.config.state_dim == 39
    with pytest.raises(Exception, match="no 'state'"):
        p.reset()
        p.select_action({k: v for k, v in policy_obs().items() if k != "state"})
    with pytest.raises(Exception, match="5 dimension"):
        p.reset()
        p.select_action({**policy_obs(), "state": np.zeros(5, np.float32)})
    # the action distribution moves with the state: the trained model conditions on it
    a, g = p.action, torch.Generator().manual_seed(0)
    n = a.config.horizon * a.config.action_dim
    args = (torch.full((2, n), a.num_classes), torch.tensor([50, 50]),
            torch.randn(2, 16, a.config.video_width, generator=g), torch.randn(2, a.config.text_dim, generator=g))
    with torch.no_grad():
        one = a(*args, torch.zeros(2, 39))
        other = a(*args, torch.randn(2, 39, generator=g))
    assert (one.exp() - other.exp()).abs().max() > 1e-3
    assert torch.allclose(one.exp().sum(-1), torch.ones(2, n), atol=1e-4)
