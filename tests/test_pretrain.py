"""Discrete diffusion pre-training: a tiny batch is learned and reproduced by sampling; runs, resume, DDP."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import torch

from vidpolicy.common.pretrained import load_model, save_model
from vidpolicy.datasets.tokens import write_index
from vidpolicy.pretrain.model import FutureDenoiser
from vidpolicy.pretrain.sample import sample_tokens
from vidpolicy.pretrain.schedule import MaskReplaceScheduler
from vidpolicy.pretrain.timesteps import TimestepSampler
from vidpolicy.pretrain.train import diffusion_loss
from _util import ROOT, run_cli, torchrun

CFG = SimpleNamespace(cond_drop=0.0, aux_weight=5e-4)


def _tiny(K=16):
    return FutureDenoiser(codebook_size=K, latent_shape=(1, 4, 4), width=64, depth=2, encoder_depth=1, heads=2,
                          text_dim=8, num_timesteps=50)


def test_overfits_a_tiny_batch_and_sampling_reproduces_it():
    torch.manual_seed(0)
    K, m = 16, _tiny()
    sched = MaskReplaceScheduler(50)
    sampler = TimestepSampler(50, importance=False)
    hist = torch.randint(0, K, (4, 16))
    fut = torch.randint(0, K, (4, 16))
    text = torch.randn(4, 8)
    opt = torch.optim.AdamW(m.parameters(), 3e-3)
    losses = []
    for _ in range(400):
        loss, _ = diffusion_loss(m, K, sched, sampler, hist, fut, text, CFG)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(float(loss))
    first, last = sum(losses[:20]) / 20, sum(losses[-20:]) / 20
    assert last < first / 5, (first, last)
    m.eval()
    with torch.no_grad():
        ctx = m.context(hist, text)
        out = sample_tokens(lambda x, t: {"v": m.denoise(x["v"], torch.full((4,), t), ctx)[0]}, sched,
                            {"v": (16, K)}, 4, 25, generator=torch.Generator().manual_seed(0))["v"]
    assert (out < K).all()  # no [MASK] left
    assert (out == fut).float().mean() >= 0.95


def test_save_load_round_trip(tmp_path):
    m = _tiny().eval()
    save_model(m, tmp_path / "model")
    m2 = load_model(FutureDenoiser, tmp_path)
    x, h, t = torch.randint(0, 17, (2, 16)), torch.randint(0, 16, (2, 16)), torch.tensor([3, 40])
    assert torch.equal(m(x, t, h, torch.ones(2, 8)), m2(x, t, h, torch.ones(2, 8)))


def test_pickle_next_to_weights_is_never_loaded(tmp_path):
    m = _tiny()
    save_model(m, tmp_path / "model")
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    torch.save({"x": Evil()}, tmp_path / "model" / "diffusion_pytorch_model.bin")
    (tmp_path / "model" / "diffusion_pytorch_model.safetensors").unlink()
    try:
        load_model(FutureDenoiser, tmp_path)
    except Exception:
        pass
    assert not marker.exists()


def _pipeline(tiny_tokenizer, video_dir, tmp_path):
    from vidpolicy.tokenizer.config import TokenizeConfig
    from vidpolicy.tokenizer.tokenize import tokenize

    tokens = tmp_path / "tokens"
    tokenize(TokenizeConfig(tokenizer=str(tiny_tokenizer), out=str(tokens), videos=str(video_dir), num_workers=0))
    return tokens


PRE = ["--width", "32", "--depth", "1", "--encoder-depth", "1", "--heads", "2", "--gap", "4", "--batch-size", "2",
       "--save-every", "3", "--log-every", "1", "--warmup-steps", "1", "--ema-start", "2", "--ema-every", "1",
       "--mixed-precision", "no"]


def test_pretrain_run_resume_and_imagine(tiny_tokenizer, video_dir, tmp_path):
    tokens = _pipeline(tiny_tokenizer, video_dir, tmp_path)
    out = tmp_path / "pre"
    cmd = ["pretrain", "--tokens", str(tokens), "--tokenizer", str(tiny_tokenizer), "--max-steps", "6", *PRE]
    r = run_cli(*cmd, "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    # a run killed after its step-3 checkpoint: the same command resumes and lands on the same weights
    killed = tmp_path / "killed"
    shutil.copytree(out, killed)
    shutil.rmtree(killed / "checkpoints" / "step-0000006")
    shutil.rmtree(killed / "model")
    r = run_cli(*cmd, "--out", str(killed))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "resumed from" in r.stdout + r.stderr and "step 3" in r.stdout + r.stderr
    a, b = load_model(FutureDenoiser, out), load_model(FutureDenoiser, killed)
    for (k, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), k
    for name in ("config.json", "loss.png", "tokenizer/config.json", "model/config.json",
                 "scheduler/scheduler_config.json"):
        assert (out / name).exists()
    from vidpolicy.pretrain.imagine import Imaginer

    saved = json.loads((out / "config.json").read_text())
    assert Imaginer(out).schedule.config["num_timesteps"] == saved["num_timesteps"]
    logs = [json.loads(x) for x in (out / "logs" / "metrics.jsonl").read_text().splitlines()]
    assert any(k.startswith("acc_masked/") for k in logs[-1]) and "vb" in logs[-1]
    video = sorted(video_dir.glob("*.mp4"))[-1]
    r = run_cli("imagine", "--model", str(out), "--video", str(video), "--instruction", "move the square",
                "--out", str(tmp_path / "im.mp4"), "--steps", "5")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "token accuracy" in r.stdout and (tmp_path / "im.png").exists() and (tmp_path / "im.mp4").exists()
    short = tmp_path / "short.mp4"
    from vidpolicy.common.media import write_mp4
    from _util import moving_square

    write_mp4(short, moving_square(2), fps=10)
    r = run_cli("imagine", "--model", str(out), "--video", str(short), "--instruction", "x", "--out",
                str(tmp_path / "s.mp4"))
    assert r.returncode == 2 and "needs 4 frames" in r.stderr


def test_mix_weights_give_the_robot_directory_its_share_of_samples(tiny_tokenizer, video_dir, tmp_path):
    from vidpolicy.pipeline import mix_weights
    from vidpolicy.pretrain.data import TokenPairs

    from vidpolicy.tokenizer.config import TokenizeConfig
    from vidpolicy.tokenizer.tokenize import tokenize

    human = _pipeline(tiny_tokenizer, video_dir, tmp_path)
    robot = tmp_path / "robot"  # the same clips, told apart by their instruction
    captions = tmp_path / "robot.csv"
    captions.write_text("file,caption\n" + "".join(f"{v.name},robot\n" for v in sorted(video_dir.rglob("*.mp4"))))
    tokenize(TokenizeConfig(tokenizer=str(tiny_tokenizer), out=str(robot), videos=str(video_dir),
                            manifest=str(captions), num_workers=0))
    dirs = [str(human), str(robot)]
    assert mix_weights(dirs, str(robot), None) is None
    weights = mix_weights(dirs + [str(human)], str(robot), 0.6)
    assert max(abs(w - x) for w, x in zip(weights, [0.2, 0.6, 0.2])) < 1e-12
    meta = json.loads((human / "index.json").read_text())["tokenizer"]

    def text(instructions):  # instruction i -> [i]
        return torch.arange(len(instructions), dtype=torch.float32)[:, None]

    pairs = TokenPairs(dirs, gap=4, codebook_size=meta["codebook_size"], latent_shape=meta["latent_shape"], text=text,
                       weights=mix_weights(dirs, str(robot), 0.8))
    robot_row = pairs.instructions.index("robot")
    drawn = torch.cat([pairs.batch(0, step, 0, 0, 32)[2][:, 0] for step in range(50)])
    share = (drawn == robot_row).float().mean().item()
    assert abs(share - 0.8) < 0.04, share  # 1,600 draws: 3 standard deviations = 0.03
    # two processes of 4 see what one process of 8 sees: a resume on another process count keeps the data order
    one = pairs.batch(0, 7, 1, 0, 8)
    two = [pairs.batch(0, 7, 1, rank, 4, world=2) for rank in (0, 1)]
    assert all(torch.equal(torch.cat([two[0][k], two[1][k]]), one[k]) for k in range(3))


def test_codebook_mismatch_exits_2_naming_both(tiny_tokenizer, video_dir, tmp_path):
    tokens = _pipeline(tiny_tokenizer, video_dir, tmp_path)
    index = json.loads((tokens / "index.json").read_text())
    index["tokenizer"]["codebook_size"] = 2048
    write_index(tokens / "index.json", index)
    r = run_cli("pretrain", "--tokens", str(tokens), "--tokenizer", str(tiny_tokenizer), "--out",
                str(tmp_path / "o"), "--max-steps", "1", *PRE)
    assert r.returncode == 2
    assert "2048" in r.stderr and "64" in r.stderr


def test_two_process_training_keeps_parameters_in_sync():
    r = torchrun(str(ROOT / "tests" / "ddp_check.py"))
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("SYNC OK") == 1


def test_two_process_pretrain_run(tiny_tokenizer, video_dir, tmp_path):
    tokens = _pipeline(tiny_tokenizer, video_dir, tmp_path)
    out = tmp_path / "ddp"
    r = torchrun("-m", "vidpolicy", "pretrain", "--tokens", str(tokens), "--tokenizer", str(tiny_tokenizer),
                 "--out", str(out), "--max-steps", "2", *PRE)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (out / "model" / "config.json").exists() and (out / "checkpoints" / "step-0000002").exists()
    # the job goes on with one process: from the global step the two reached, with the same global batch (2 x 2)
    args = ["pretrain", "--tokens", str(tokens), "--tokenizer", str(tiny_tokenizer), "--out", str(out),
            "--max-steps", "4", *PRE]
    r = run_cli(*args)  # one process of 2 would halve the global batch: another run
    assert r.returncode == 2 and "batch_size: 4 there, 2 now" in r.stderr, r.stderr[-2000:]
    r = run_cli(*args, "--batch-size", "4")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "(step 2)" in r.stdout + r.stderr and (out / "checkpoints" / "step-0000004").exists()


def test_each_process_draws_its_own_noise(tiny_tokenizer, video_dir, tmp_path):
    tokens = _pipeline(tiny_tokenizer, video_dir, tmp_path)
    r = torchrun(str(ROOT / "tests" / "ddp_noise_check.py"), str(tmp_path), "pretrain", "--tokens", str(tokens),
                 "--tokenizer", str(tiny_tokenizer), "--out", str(tmp_path / "ddp"), "--max-steps", "3", *PRE)
    assert r.returncode == 0, r.stderr[-2000:]
    t0, t1 = ((tmp_path / f"t_rank{k}.jsonl").read_text().splitlines() for k in (0, 1))
    assert len(t0) == len(t1) == 3 and t0 != t1  # the same draws on every process would waste N - 1 of them
