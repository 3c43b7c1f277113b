"""The mask-and-replace process: marginals, absorbing [MASK], posterior = Bayes, parity with diffusers."""

from __future__ import annotations

import itertools
import json

import pytest
import torch

from vidpolicy.pretrain.sample import truncate
from vidpolicy.pretrain.losses import loss_terms, true_posterior_kl
from vidpolicy.pretrain.schedule import MaskReplaceScheduler

SCHEDULES = [MaskReplaceScheduler(20), MaskReplaceScheduler.with_replace(20, 0.3)]


@pytest.mark.parametrize("sched", SCHEDULES)
def test_q_rows_sum_to_one_and_match_monte_carlo(sched):
    K, n = 5, 40000
    x0 = torch.full((1, n), 2)
    for t in (1, 7, 20):
        probs = sched.q_probs(x0[:, :1], torch.tensor([t]), K)[0, 0]
        assert torch.isclose(probs.sum(), torch.tensor(1.0), atol=1e-6)
        xt = sched.add_noise(x0, torch.tensor([t]), K, torch.Generator().manual_seed(t))
        freq = torch.bincount(xt[0], minlength=K + 1).float() / n
        assert torch.allclose(freq, probs, atol=0.01), (t, freq, probs)


def test_mask_is_absorbing_and_time_monotone():
    s = MaskReplaceScheduler(20)
    K = 4
    xt = torch.full((1, 10), K)
    # q(x_t | x_s = MASK) puts all its mass on MASK: the posterior of a masked x_t given a masked x_s
    lp = s.posterior(torch.log_softmax(torch.randn(1, 10, K), -1), xt, torch.tensor([10]), torch.tensor([5]))
    assert torch.allclose(lp.exp().sum(-1), torch.ones(1, 10), atol=1e-5)
    assert (s.gamma_bar[1:] >= s.gamma_bar[:-1]).all() and (s.alpha_bar[1:] <= s.alpha_bar[:-1]).all()


def _one_hop_matrix(s: MaskReplaceScheduler, a: int, b: int, K: int) -> torch.Tensor:
    """Q[j, i] = q(x_b = i | x_a = j) over K + 1 classes, built from the cumulative tables."""
    alpha, beta, gamma = (float(v) for v in s.between(torch.tensor([a]), torch.tensor([b]), K))
    Q = torch.full((K + 1, K + 1), beta, dtype=torch.float64)
    Q += torch.eye(K + 1, dtype=torch.float64) * alpha
    Q[:, K] = gamma
    Q[K] = 0
    Q[K, K] = 1
    return Q


@pytest.mark.parametrize("sched", SCHEDULES)
def test_posterior_equals_brute_force_bayes(sched):
    K = 3
    torch.manual_seed(0)
    p0 = torch.softmax(torch.randn(K, dtype=torch.float64), 0)
    for s_, t_ in ((0, 1), (3, 4), (2, 9), (0, 20), (10, 20)):
        Q0s = _one_hop_matrix(sched, 0, s_, K) if s_ > 0 else torch.eye(K + 1, dtype=torch.float64)
        Qst = _one_hop_matrix(sched, s_, t_, K)
        for xt in range(K + 1):
            # p(x_s | x_t) = sum_k p(k) q(x_s | k) q(x_t | x_s) / q(x_t | k)
            brute = torch.zeros(K + 1, dtype=torch.float64)
            for k in range(K):
                joint = Q0s[k] * Qst[:, xt]
                if joint.sum() > 0:
                    brute += p0[k] * joint / joint.sum()
            brute /= brute.sum()
            got = sched.posterior(torch.log(p0).float()[None, None], torch.tensor([[xt]]), torch.tensor([t_]),
                                  torch.tensor([s_]))[0, 0].exp().double()
            assert torch.allclose(got.sum(), torch.tensor(1.0, dtype=torch.float64), atol=1e-5)
            assert torch.allclose(got, brute, atol=2e-4), (s_, t_, xt, got, brute)


def test_cumulative_tables_compose():
    s = MaskReplaceScheduler.with_replace(20, 0.3)
    K = 4
    for a, b, c in itertools.combinations(range(0, 21, 5), 3):
        lhs = _one_hop_matrix(s, a, b, K) @ _one_hop_matrix(s, b, c, K)
        assert torch.allclose(lhs, _one_hop_matrix(s, a, c, K), atol=1e-9)


def test_parity_with_diffusers_vq_diffusion_scheduler():
    from diffusers import VQDiffusionScheduler

    K, T = 7, 100
    ours = MaskReplaceScheduler(T)
    theirs = VQDiffusionScheduler(num_vec_classes=K + 1, num_train_timesteps=T)
    torch.manual_seed(0)
    log_x0 = torch.log_softmax(torch.randn(3, 64, K) * 2, -1)
    x_t = torch.randint(0, K + 1, (3, 64))
    for d in (0, 1, 10, 50, 99):  # diffusers' step d is our level d + 1
        if d > 0:
            a = ours.posterior(log_x0, x_t, torch.full((3,), d + 1), torch.full((3,), d))
            b = theirs.q_posterior(log_x0.transpose(1, 2), x_t, d).transpose(1, 2)
            assert torch.allclose(a.exp(), b.exp(), atol=1e-5)
        g1, g2 = torch.Generator().manual_seed(d), torch.Generator().manual_seed(d)
        mine = ours.step(log_x0, d + 1, x_t, g1).prev_sample
        ref = theirs.step(log_x0.transpose(1, 2), d, x_t, g2).prev_sample
        assert (mine == ref).float().mean() == 1.0


def test_respacing_and_truncation():
    s = MaskReplaceScheduler(100)
    assert s.timesteps.tolist() == list(range(100, 0, -1)) and s.previous_timestep(1) == 0
    s.set_timesteps(4)
    assert s.timesteps.tolist() == [100, 75, 50, 25] and [s.previous_timestep(t) for t in (100, 25)] == [75, 0]
    s.set_timesteps(100)
    assert s.timesteps.tolist() == list(range(100, 0, -1)) and s.previous_timestep(37) == 36
    lp = torch.log(torch.tensor([[[0.5, 0.3, 0.15, 0.05]]]))
    kept = truncate(lp, 0.88).exp()[0, 0]
    assert (kept[:3] > 0.1).all() and kept[3] < 1e-20  # cumulative 0.5, 0.8 < 0.88 -> keep top 3


def test_truncation_keeps_ties_whole_and_needs_no_full_sort_for_the_answer():
    lp = torch.log(torch.tensor([[0.4, 0.2, 0.2, 0.2], [0.25, 0.25, 0.25, 0.25], [0.7, 0.1, 0.1, 0.1]]))
    kept = (truncate(lp, 0.5) > -69).tolist()  # 0.4 < 0.5: the next class is kept, and its ties with it
    assert kept == [[True] * 4, [True, True, True, True], [True, False, False, False]]
    assert (truncate(lp, 0.0) > -69).sum(-1).tolist() == [1, 4, 1]  # r = 0: the top class and its ties
    # rows whose mass lies past the first classes fall back to a full sort: the same answer as sorting every row
    noise = torch.randn(3, 50, 64, generator=torch.Generator().manual_seed(0))
    lp = torch.log_softmax(noise * torch.tensor([0.3, 3.0, 10.0])[:, None, None], -1)  # flat, peaked, sharp
    lp = lp.bfloat16().float()  # bf16 logits: many ties
    for r in (0.0, 0.5, 0.88):
        fast, full = truncate(lp, r, first=4), truncate(lp, r, first=64)
        assert torch.equal(fast, full)
    n = (truncate(lp, 0.88, first=4) > -69).sum(-1)
    assert n[0].min() > 4 and n[2].min() < 4  # both paths were taken
    marginal = truncate(lp, 0.88).exp().sum(-1)
    assert (marginal >= 0.88 - 1e-5).all() and (marginal <= 1 + 1e-5).all()


def test_truncation_stops_exactly_where_the_running_mass_reaches_r():
    # r set to the mass before class k, as the running sum has it: classes 0..k-1 lie before r, class k does not
    g = torch.Generator().manual_seed(0)
    p = torch.rand(300, 8, generator=g).sort(dim=-1, descending=True).values
    lp = torch.log(p / p.sum(-1, keepdim=True))
    before = torch.cat([torch.zeros(300, 1), lp.exp().cumsum(-1)[:, :-1]], -1)
    for k in range(1, 8):
        counts = [int((truncate(lp[i:i + 1], before[i, k].item()) > -69).sum()) for i in range(300)]
        assert counts == [k] * 300, (k, sorted(set(counts)))


def test_loss_terms_zero_for_perfect_prediction():
    s = MaskReplaceScheduler(20)
    K = 6
    x0 = torch.randint(0, K, (4, 30))
    t = torch.tensor([1, 5, 12, 20])
    xt = s.add_noise(x0, t, K)
    perfect = torch.full((4, 30, K), -69.0).scatter_(-1, x0[..., None], 0.0)
    vb, ce = loss_terms(s, torch.log_softmax(perfect, -1), x0, xt, t)
    assert (vb.abs() < 1e-3).all() and (ce < 1e-3).all()
    vb_bad, _ = loss_terms(s, torch.log_softmax(torch.zeros(4, 30, K), -1), x0, xt, t)
    assert (vb_bad > vb + 1e-3).all()


@pytest.mark.parametrize("sched", SCHEDULES)
def test_closed_form_kl_equals_the_kl_of_full_posteriors(sched):
    K = 9
    torch.manual_seed(1)
    x0 = torch.randint(0, K, (6, 50))
    t = torch.tensor([1, 2, 5, 10, 15, 20])
    x_t = sched.add_noise(x0, t, K)
    x_t[:, :3] = x0[:, :3]  # make sure unmasked x_t == x_0, x_t != x_0 and [MASK] all occur
    x_t[:, 3:6] = (x0[:, 3:6] + 1) % K
    x_t[:, 6:9] = K
    log_pred = torch.log_softmax(torch.randn(6, 50, K) * 3, -1)
    s = t - 1
    onehot = torch.full_like(log_pred, -69.0).scatter_(-1, x0[..., None], 0.0)
    lq, lp = sched.posterior(onehot, x_t, t, s), sched.posterior(log_pred, x_t, t, s)
    brute = (lq.exp() * (lq - lp)).sum(-1)
    closed = true_posterior_kl(sched, log_pred, x0, x_t, t)
    assert torch.allclose(closed, brute, atol=1e-4, rtol=1e-3)
    assert (closed > -1e-5).all()


@pytest.mark.parametrize("sched", SCHEDULES)
def test_mask_is_absorbing_in_the_posterior(sched):
    """A token visible at t was visible at every s < t: p(x_s = [MASK] | x_t = token) = 0."""
    K = 6
    lp = torch.log_softmax(torch.randn(2, 30, K), -1)
    x_t = torch.randint(0, K, (2, 30))
    for s_, t_ in ((0, 1), (4, 9), (12, 20)):
        post = sched.posterior(lp, x_t, torch.tensor([t_, t_]), torch.tensor([s_, s_])).exp()
        assert (post[..., K] < 1e-12).all()


def test_per_stream_truncation_takes_the_mode():
    from vidpolicy.pretrain.sample import sample_tokens

    probs = torch.tensor([0.4, 0.3, 0.2, 0.1])  # the same x_0 distribution for every token of both streams

    def predict(x, t):
        return {k: torch.log(probs).expand(*v.shape, 4) for k, v in x.items()}

    g = torch.Generator().manual_seed(0)
    out = sample_tokens(predict, MaskReplaceScheduler(20), {"a": (500, 4), "b": (500, 4)}, 2, 5,
                        top_r={"a": 0.0, "b": None}, generator=g)
    assert (out["a"] == 0).all()  # r = 0: always the most likely class
    freq = torch.bincount(out["b"].flatten(), minlength=4).float() / out["b"].numel()
    assert torch.allclose(freq, probs, atol=0.04)  # untruncated: the predicted marginals


def test_scheduler_saves_and_loads_with_its_config(tmp_path):
    from vidpolicy.common.errors import VidpolicyError

    sched = MaskReplaceScheduler.with_replace(30, 0.25)
    where = sched.save(tmp_path)
    assert (where / "scheduler_config.json").exists()
    back = MaskReplaceScheduler.load(tmp_path, 30)
    public = lambda c: {k: v for k, v in c.items() if not k.startswith("_")}  # noqa: E731
    assert public(back.config) == public(sched.config) and back.config["gamma_end"] == pytest.approx(0.75 - 9e-6)
    assert torch.equal(back.alpha_bar, sched.alpha_bar) and torch.equal(back.gamma_bar, sched.gamma_bar)
    with pytest.raises(VidpolicyError, match="30 diffusion steps.*50"):
        MaskReplaceScheduler.load(tmp_path, 50)
    cfg_file = where / "scheduler_config.json"
    cfg_file.write_text(json.dumps({k: v for k, v in json.loads(cfg_file.read_text()).items()
                                    if k != "_format_version"}))
    with pytest.raises(VidpolicyError, match="model format 1"):
        MaskReplaceScheduler.load(tmp_path, 30)
    with pytest.raises(VidpolicyError, match="no scheduler_config.json"):
        MaskReplaceScheduler.load(tmp_path / "elsewhere", 30)
