"""The VQ-VAE: shapes, codebook use, save/load, its kernels against plain references, the training run's outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
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


def _encoder_blocks(m: VideoTokenizer) -> int:
    from vidpolicy.tokenizer.model import ResidualBlock

    return sum(isinstance(layer, ResidualBlock) for layer in m.encoder)


def test_encoder_type_and_depth_are_saved_and_loaded(tmp_path):
    assert _encoder_blocks(VideoTokenizer()) == 0  # the default encoder has no residual blocks
    m = load_model(VideoTokenizer, _saved(tmp_path / "one", encoder_type="videogpt", encoder_res_layers=1))
    assert m.config.encoder_type == "videogpt" and _encoder_blocks(m) == 1
    assert load_model(VideoTokenizer, _saved(tmp_path / "new", encoder_type="patch")).config.encoder_type == "patch"


def test_a_tokenizer_of_an_earlier_format_is_refused_naming_both_versions(tmp_path):
    from vidpolicy import __version__
    from vidpolicy.common.errors import VidpolicyError

    path = _drop_config_keys(_saved(tmp_path), "_format_version", "_vidpolicy_version")
    with pytest.raises(VidpolicyError, match=rf"vidpolicy 0.1 or earlier \(model format 1\); vidpolicy "
                                             rf"{__version__} reads model format 2: train it again"):
        load_model(VideoTokenizer, path)


def _up_widths(m: VideoTokenizer) -> list[int]:
    from vidpolicy.tokenizer.model import LatentConvTranspose3d

    return [layer.out_channels for layer in m.decoder if isinstance(layer, LatentConvTranspose3d)]


def test_upsampling_width_is_configurable(tmp_path):
    m = VideoTokenizer(size=32, hidden_channels=32, res_layers=1, codebook_size=64, embedding_dim=16, up_channels=8)
    assert _up_widths(m) == [8, 3]
    assert m.decode(m.encode(torch.rand(2, 3, 4, 32, 32) - 0.5)).shape == (2, 3, 4, 32, 32)
    assert _up_widths(VideoTokenizer()) == [64, 3]  # the default: half the hidden width
    assert _up_widths(load_model(VideoTokenizer, _saved(tmp_path / "new", up_channels=16))) == [16, 3]


def _drop_config_keys(path, *keys):
    """Make a saved tokenizer look as if an earlier version, without ``keys``, had saved it."""
    cfg_file = path / "model" / "config.json"
    cfg = json.loads(cfg_file.read_text())
    for key in keys:
        del cfg[key]
    cfg_file.write_text(json.dumps(cfg))
    return path


def _saved(path, **kw):
    save_model(VideoTokenizer(size=32, hidden_channels=32, res_layers=1, codebook_size=64, embedding_dim=16, **kw),
               path / "model")
    return path


def test_tokenizer_train_run_outputs(tiny_tokenizer):
    for name in ("config.json", "manifest.csv", "eval.json", "loss.png", "model/config.json"):
        assert (tiny_tokenizer / name).exists(), name
    ckpts = sorted(p.name for p in (tiny_tokenizer / "checkpoints").iterdir())
    assert ckpts == ["step-0000006", "step-0000012"]
    opt = torch.load(tiny_tokenizer / "checkpoints" / ckpts[-1] / "optimizer.bin", weights_only=True)
    assert [tuple(g["betas"]) for g in opt["param_groups"]] == [(0.9, 0.95)]  # --adam-beta2 0.95 reached Adam
    ev = json.loads((tiny_tokenizer / "eval.json").read_text())
    assert ev["heldout"]["clips"] > 0 and ev["heldout"]["psnr"] > 5
    rows = [json.loads(x) for x in (tiny_tokenizer / "logs" / "metrics.jsonl").read_text().splitlines()]
    assert {"loss", "recon_loss", "commitment", "perplexity", "codebook_usage", "psnr"} <= set(rows[-1])
    # --eval-every 4 of 12 steps: held-out rows at 4 and 8 (off the --log-every 10 grid, with the training averages);
    # step 12 has the full evaluation in eval.json instead
    curve = {r["step"]: r for r in rows if "heldout_psnr" in r}
    assert sorted(curve) == [4, 8] and [r["step"] for r in rows] == [4, 8, 10, 12]
    assert all(5 < r["heldout_psnr"] < 60 and 0 < r["heldout_ssim"] <= 1 and "loss" in r for r in curve.values())


def test_latent_conv_skips_padding_taps_exactly():
    from vidpolicy.tokenizer.model import LatentConv3d

    torch.manual_seed(0)
    conv = LatentConv3d(8, 6, 3, padding=1)
    for t in (1, 2):  # one frame deep: the middle temporal slice; deeper: the ordinary convolution
        x = torch.randn(2, 8, t, 5, 7)
        ref = torch.nn.functional.conv3d(x, conv.weight, conv.bias, padding=1)
        assert torch.allclose(conv(x), ref, atol=1e-5)
    from vidpolicy.tokenizer.model import LatentConvTranspose3d

    for k, s, p in ((4, 2, 1), (3, 1, 1), (4, 2, 0)):
        up = LatentConvTranspose3d(8, 6, k, stride=s, padding=p)
        for t in (1, 2, 3):  # 1 and 2 frames deep: folded into a 2D transposed convolution; 3: the 3D one
            x = torch.randn(2, 8, t, 5, 7)
            ref = torch.nn.functional.conv_transpose3d(x, up.weight, up.bias, stride=s, padding=p)
            assert up(x).shape == ref.shape and torch.allclose(up(x), ref, atol=1e-5), (k, s, p, t)


def test_both_encoders_and_the_projected_code_search():
    from einops import rearrange

    torch.manual_seed(0)
    x = torch.rand(3, 3, 4, 32, 32) - 0.5
    # features narrower than the codes (searched before the projection) and wider (after it)
    for kind, emb in (("patch", 16), ("videogpt", 16), ("patch", 64)):
        m = VideoTokenizer(size=32, hidden_channels=32, res_layers=1, codebook_size=64, embedding_dim=emb,
                           encoder_type=kind)
        m(x)  # codebook initialised from these latents
        m.eval()
        tok = m.encode(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):  # as tokenize --precision bf16 runs it
            assert (m.encode(x) == tok).float().mean() > 0.9
        # the search on pre-projection features picks the same codes as a brute-force search on z
        z = rearrange(m.encoder(x), "b d t h w -> (b t h w) d")
        brute = torch.cdist(z, m.codebook.embed).argmin(1).view_as(tok)
        assert tok.shape == (3, 1, 8, 8) and (tok == brute).float().mean() > 0.99
        # training searches the same way (in feature space when narrower): it picks exactly tokenize's codes
        assert torch.equal(m(x)["tokens"], tok)
    # the patch encoder is the cheap one
    n = {k: sum(p.numel() for p in VideoTokenizer(encoder_type=k).encoder.parameters()) for k in ("patch", "videogpt")}
    assert n["patch"] < 0.5 * n["videogpt"]


def test_written_out_axial_attention_equals_pytorchs():
    import torch.nn.functional as F

    from vidpolicy.tokenizer.model import _attend

    q, k, v = torch.randn(3, 5, 2, 24, 16, dtype=torch.float64).unbind(0)
    assert torch.allclose(_attend(q, k, v), F.scaled_dot_product_attention(q, k, v), atol=1e-10)


def test_axial_attention_equals_per_axis_attention():
    """The fused channels-last AxialAttention gives VideoGPT's per-axis attention (1x1 convolutions, one axis at a
    time, SDPA), on a one-frame-deep latent (T attention is the identity on v) and a deeper one."""
    import torch.nn.functional as F
    from einops import rearrange

    from vidpolicy.tokenizer.model import AxialAttention

    torch.manual_seed(0)
    att = AxialAttention(16, 2).double()
    for p in att.parameters():
        torch.nn.init.normal_(p, std=0.3)
    for t in (1, 3):
        x = torch.randn(2, 16, t, 5, 7, dtype=torch.float64)
        y, total = att.norm(x), 0
        for axis, proj in enumerate(att.qkv):
            q, k, v = proj(y).chunk(3, dim=1)
            pattern = ("b (n c) t h w -> b h w n t c", "b (n c) t h w -> b t w n h c",
                       "b (n c) t h w -> b t h n w c")[axis]
            o = F.scaled_dot_product_attention(*(rearrange(z, pattern, n=2) for z in (q, k, v)))
            total = total + rearrange(o, pattern.split(" -> ")[1] + " -> " + pattern.split(" -> ")[0], n=2)
        ref = x + att.out(total)
        assert torch.allclose(att(x), ref, atol=1e-10)


@pytest.mark.slow
def test_compiled_training_saves_the_same_model_keys_and_close_losses(video_dir, tmp_path):
    """`tokenizer train --compile` compiles the module in place: the checkpoint loads into an uncompiled tokenizer
    and the first losses match eager training to rounding."""
    from vidpolicy.tokenizer.config import TokenizerTrainConfig
    from vidpolicy.tokenizer.train import train_tokenizer

    losses = {}
    for compiled in (False, True):
        out = tmp_path / f"compile{compiled}"
        train_tokenizer(TokenizerTrainConfig(videos=str(video_dir), out=str(out), size=32, codebook_size=32,
                                             embedding_dim=16, hidden_channels=16, res_layers=1, max_steps=4,
                                             batch_size=2, log_every=1, eval_every=0, num_workers=0,
                                             mixed_precision="no", compile=compiled))
        losses[compiled] = [json.loads(line)["loss"] for line in (out / "logs" / "metrics.jsonl").open()]
        load_model(VideoTokenizer, out)
    assert len(losses[True]) == 4 and np.allclose(losses[True], losses[False], rtol=1e-3)
