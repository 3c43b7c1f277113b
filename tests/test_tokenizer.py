"""The VQ-VAE: shapes, codebook use, save/load, and the training run's outputs."""

from __future__ import annotations

import json

import torch

from vidpolicy.common.pretrained import load_model, save_model
from vidpolicy.tokenizer.model import VideoTokenizer
from vidpolicy.datasets.clips import to_unit_range
from _util import moving_square


def test_encode_decode_shapes_default_and_8_frames():
    m = VideoTokenizer(hidden_channels=32, res_layers=1, codebook_size=64, embedding_dim=16).eval()
    assert m.latent_shape == (1, 24, 24) and m.tokens_per_clip == 576
    x = torch.rand(2, 3, 4, 96, 96) - 0.5
    tok = m.encode(x)
    assert tok.shape == (2, 1, 24, 24) and tok.dtype == torch.int64
    assert m.decode(tok).shape == (2, 3, 4, 96, 96)
    m8 = VideoTokenizer(frames=8, hidden_channels=32, res_layers=1, codebook_size=64, embedding_dim=16).eval()
    assert m8.encode(torch.rand(1, 3, 8, 96, 96) - 0.5).shape == (1, 2, 24, 24)


def test_training_uses_many_codes_and_loss_falls():
    torch.manual_seed(0)
    m = VideoTokenizer(size=32, hidden_channels=32, res_layers=1, codebook_size=64, embedding_dim=16)
    opt = torch.optim.Adam(m.parameters(), 3e-3)
    clips = [moving_square(4, 32, 32, seed=k) for k in range(4)]
    x = torch.stack([to_unit_range(c) for c in clips])
    losses = []
    for _ in range(40):
        out = m(x)
        out["loss"].backward()
        opt.step()
        opt.zero_grad()
        losses.append(float(out["recon_loss"]))
    assert losses[-1] < 0.5 * losses[0]
    assert len(torch.unique(m.eval().encode(x))) > 1


def test_save_load_round_trip_is_bit_exact(tmp_path):
    torch.manual_seed(0)
    m = VideoTokenizer(size=32, hidden_channels=32, res_layers=1, codebook_size=64, embedding_dim=16)
    m(torch.rand(2, 3, 4, 32, 32) - 0.5)  # initialise the codebook from data
    m.eval()
    save_model(m, tmp_path / "model")
    m2 = load_model(VideoTokenizer, tmp_path)
    for (k, a), (_, b) in zip(m.state_dict().items(), m2.state_dict().items()):
        assert torch.equal(a, b), k
    x = torch.rand(2, 3, 4, 32, 32) - 0.5
    assert torch.equal(m.encode(x), m2.encode(x))


def test_tokenizer_train_run_outputs(tiny_tokenizer):
    for name in ("config.json", "manifest.csv", "eval.json", "loss.png", "model/config.json"):
        assert (tiny_tokenizer / name).exists(), name
    ckpts = sorted(p.name for p in (tiny_tokenizer / "checkpoints").iterdir())
    assert ckpts == ["step-0000006", "step-0000012"]
    ev = json.loads((tiny_tokenizer / "eval.json").read_text())
    assert ev["heldout"]["clips"] > 0 and ev["heldout"]["psnr"] > 5
    rows = [json.loads(x) for x in (tiny_tokenizer / "logs" / "metrics.jsonl").read_text().splitlines()]
    assert {"loss", "recon_loss", "commitment", "perplexity", "codebook_usage", "psnr"} <= set(rows[-1])
