"""The tokenizer's codebook: blocked argmin, dead codes, a non-finite batch, restarts where the codebook fits worst."""

from __future__ import annotations

import torch


def test_blocked_argmin_equals_argmin_including_ties():
    from vidpolicy.tokenizer.quantizer import blocked_argmin

    g = torch.Generator().manual_seed(0)
    for n, k in ((300, 2048), (7, 128), (5, 100), (3, 64)):  # blocked, blocked, not a multiple, one block
        real = torch.randn(n, k, generator=g)
        tied = torch.randint(0, 3, (n, k), generator=g).float()  # many equal minima per row: the first must win
        for s in (real, tied, real.flip(1)):
            assert torch.equal(blocked_argmin(s), s.argmin(1))


def test_dead_codes_are_those_under_one_row_per_step_or_half_an_even_share_in_small_batches():
    from vidpolicy.tokenizer.quantizer import EMACodebook

    for rows, restarted in ((4, [True, False, False, False]), (40, [True, True, True, False])):
        cb = EMACodebook(4, 2, decay=1.0)  # decay 1: the usage set here is what the update compares
        cb.cluster_size.copy_(torch.tensor([0.3, 0.6, 0.9, 5.0]))
        z = torch.full((rows, 2), 7.0)
        cb._ema_update(z, torch.full((rows,), 3), torch.tensor([0.0, 0, 0, rows]))
        # an even share is rows / 4 codes: 1 row (threshold 0.5) or 10 rows (threshold capped at 1)
        assert [bool(torch.equal(e, z[0])) for e in cb.embed] == restarted, rows


def test_a_non_finite_batch_leaves_the_codebook_as_it_was():
    from vidpolicy.tokenizer.quantizer import EMACodebook

    cb = EMACodebook(8, 4).train()
    cb(torch.randn(32, 4))  # initialise and update once
    before = {k: v.clone() for k, v in cb.state_dict().items()}
    z = torch.randn(32, 4)
    z[5, 2] = float("nan")
    cb(z)  # the trainer then skips or stops on the loss; the codes must still be usable
    assert all(torch.equal(before[k], v) for k, v in cb.state_dict().items())
    cb(torch.randn(32, 4))
    assert torch.isfinite(cb.embed).all() and not torch.equal(before["embed"], cb.embed)


def test_error_restarts_put_dead_codes_where_the_codebook_fits_worst():
    """1000 encoder outputs at the origin, 10 at (50, 50), all nearest code 0; codes 1-3 are unused, so they restart:
    drawn in proportion to squared error they land on the badly fitted (50, 50) rows, drawn uniformly on the origin."""
    from vidpolicy.tokenizer.quantizer import EMACodebook

    torch.manual_seed(0)
    z = torch.cat([0.001 * torch.randn(1000, 2), torch.tensor([50.0, 50.0]) + torch.randn(10, 2)])
    fresh = {}
    for restart in ("error", "random"):
        cb = EMACodebook(4, 2, restart=restart).train()
        codes = torch.tensor([[0.0, 0.0], [-100.0, -100.0], [-100.0, -101.0], [-101.0, -100.0]])
        cb.embed.copy_(codes)
        cb.embed_avg.copy_(codes)
        cb.cluster_size.copy_(torch.tensor([100.0, 0.0, 0.0, 0.0]))
        cb.initialized.fill_(True)
        _, idx, _, _ = cb(z)
        assert (idx == 0).all()
        fresh[restart] = cb.embed[1:].norm(dim=1)
    assert (fresh["error"] > 40).all()
    assert (fresh["random"] < 1).sum() >= 2  # all three from the 10 outliers: probability 1e-6
