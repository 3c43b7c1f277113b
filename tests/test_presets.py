"""Model presets (tiny / small / base / large), the size line each run prints, gradient checkpointing, and models
that build every tensor on the device they are given (a forward on the ``meta`` device mixes in no CPU tensor)."""

from __future__ import annotations

import argparse

import pytest
import torch

from vidpolicy.common.cli_args import add_config_args, config_from_args
from vidpolicy.common.errors import VidpolicyError
from vidpolicy.common.model_size import count_parameters, size_line
from vidpolicy.common.text import TEXT_DIM
from vidpolicy.finetune.config import FinetuneConfig
from vidpolicy.finetune.model import ActionDenoiser
from vidpolicy.pretrain.config import PretrainConfig
from vidpolicy.pretrain.model import FutureDenoiser
from vidpolicy.tokenizer.config import TokenizerTrainConfig
from vidpolicy.tokenizer.model import VideoTokenizer
from vidpolicy.tokenizer.train import build_tokenizer


def _config(cls, *argv):
    p = argparse.ArgumentParser()
    add_config_args(p, cls)
    return config_from_args(cls, p.parse_args(list(argv)))


def _denoiser(cfg: PretrainConfig) -> FutureDenoiser:
    return FutureDenoiser(width=cfg.width, depth=cfg.depth, encoder_depth=cfg.encoder_depth, heads=cfg.heads)


def test_presets_grow_and_large_passes_300m_parameters():
    sizes = {}
    with torch.device("meta"):  # shapes only: the large model costs no memory here
        for name in ("tiny", "small", "base", "large"):
            pre = _config(PretrainConfig, "--preset", name)
            tok = build_tokenizer(_config(TokenizerTrainConfig, "--preset", name))
            ft = _config(FinetuneConfig, "--preset", name)
            act = ActionDenoiser(width=ft.width, depth=ft.depth, heads=ft.heads)
            sizes[name] = [count_parameters(m)[0] for m in (_denoiser(pre), tok, act)]
    for kind in range(3):
        counts = [sizes[n][kind] for n in ("tiny", "small", "base", "large")]
        assert counts == sorted(counts) and len(set(counts)) == 4, (kind, counts)
    assert sizes["large"][0] >= 300e6 and sizes["tiny"][0] < 1e6
    assert sizes["small"][0] == count_parameters(_denoiser(PretrainConfig()))[0]  # small: the defaults


def test_explicit_flags_and_config_files_override_the_preset(tmp_path):
    cfg = _config(PretrainConfig, "--preset", "base", "--depth", "3")
    assert (cfg.width, cfg.depth, cfg.heads) == (512, 3, 8)
    saved = tmp_path / "c.json"
    saved.write_text('{"width": 96}')
    assert _config(PretrainConfig, "--preset", "large", "--config", str(saved)).width == 96
    with pytest.raises(SystemExit):  # argparse names the choices
        _config(PretrainConfig, "--preset", "huge")
    from vidpolicy.common.config import preset_values

    with pytest.raises(VidpolicyError, match="no preset 'huge'"):
        preset_values(PretrainConfig, "huge")


def test_the_size_line_counts_parameters_and_flops():
    m = FutureDenoiser(codebook_size=16, latent_shape=(1, 4, 4), width=32, depth=1, encoder_depth=1, heads=2)
    line = size_line("denoiser", [m], m.flops_per_sample(), 8)
    n = sum(p.numel() for p in m.parameters())
    assert f"{n / 1e6:.1f} M parameters" in line and "TFLOP per step (batch 8)" in line
    # the meta-device trace counts what a real forward at batch 1 does (less the CPU's fused attention kernel,
    # which the counter does not know: a few percent at these sizes)
    from torch.utils.flop_counter import FlopCounterMode

    ids = torch.zeros(1, 16, dtype=torch.long)
    with FlopCounterMode(display=False) as real:
        m(ids, torch.zeros(1, dtype=torch.long), ids, torch.zeros(1, TEXT_DIM))
    assert 0.8 * m.flops_per_sample(trains=False) <= real.get_total_flops() <= m.flops_per_sample(trains=False)
    assert m.flops_per_sample(trains=False) * 3 == m.flops_per_sample()


def test_gradient_checkpointing_gives_the_same_loss_and_gradients():
    torch.manual_seed(0)
    m = FutureDenoiser(codebook_size=16, latent_shape=(1, 4, 4), width=32, depth=2, encoder_depth=1, heads=2)
    x, h = torch.randint(0, 17, (3, 16)), torch.randint(0, 16, (3, 16))
    t, txt = torch.tensor([5, 50, 90]), torch.randn(3, TEXT_DIM)

    def grads():
        m.zero_grad()
        loss = m(x, t, h, txt).logsumexp(-1).mean() + m(x, t, h, txt)[..., 3].mean()
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in m.parameters() if p.grad is not None]

    plain = grads()
    m.enable_gradient_checkpointing()
    assert m.gradient_checkpointing
    ckpt = grads()
    assert torch.allclose(plain[0], ckpt[0]) and len(plain[1]) == len(ckpt[1])
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(plain[1], ckpt[1]))


def test_every_model_runs_on_the_device_it_is_given():
    """A module that made a tensor on the CPU inside forward would fail here: meta and CPU tensors do not mix."""
    with torch.device("meta"):
        tok = VideoTokenizer(hidden_channels=32, codebook_size=64, embedding_dim=16, up_channels=16).eval()
        clip = torch.zeros(2, 3, 4, 96, 96)
        assert tok.decode(tok.encode(clip)).device.type == "meta"
        den = FutureDenoiser(codebook_size=64, width=32, depth=1, encoder_depth=1)
        ids = torch.zeros(2, 576, dtype=torch.long)
        out = den(ids, torch.zeros(2, dtype=torch.long), ids, torch.zeros(2, TEXT_DIM))
        assert out.device.type == "meta" and out.shape == (2, 576, 64)
        act = ActionDenoiser(width=32, depth=1, video_width=32, state_dim=4)
        a = act(torch.zeros(2, 16, dtype=torch.long), torch.zeros(2, dtype=torch.long), torch.zeros(2, 576, 32),
                torch.zeros(2, TEXT_DIM), torch.zeros(2, 4))
        assert a.device.type == "meta"
    for model in (tok, den, act):  # and every buffer moved with .to()
        assert {b.device.type for b in model.buffers()} <= {"meta"}


def test_decode_workers_default_from_the_cores(monkeypatch):
    from vidpolicy.common import device

    assert device.decode_workers(3) == 3 and device.decode_workers(0) == 0  # asked for: as asked
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device.decode_workers(-1) == 1  # a CPU: every extra decoder takes a core from the model
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(device.os, "sched_getaffinity", lambda _: set(range(16)))
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert device.decode_workers(-1) == 8  # one GPU of a 16-core node: capped at 8
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
    assert device.decode_workers(-1) == 1  # 8 GPUs share the 16 cores: 2 each, one left for the process
