"""What a video model's features carry about the actions: a ridge probe from its features to the expert's action
chunk, fitted on one dataset's episodes and scored on another's (normalised MSE, as `_imagination`).

For each video model (a pre-training run or a policy directory, each with its own tokenizer; ``random:DIR`` is DIR's
architecture and tokenizer with fresh weights), views of each sample: the features with the future all masked (what
the history and instruction alone give, the view the paper's action model gets at its first steps); with the true
future in view (t = 0, the view ``--act-on imagined`` trains on); the future the model itself imagines (6 steps, as
the grid's policies) in view, through a probe fitted on imagined futures and through the one fitted on the true
future. Each probe reads the state and the task beside the features; "state + task" alone is the floor the video
has to beat.

``--target goal`` / ``object`` probes where the task's goal / first object is (Meta-World's 39-d state at the
history's last frame: 36:39 / 4:7; collect the datasets with ``--state full``), from agent_pos and the task beside
the features, and from the frame's pixels (24², a linear floor for what the camera shows): does the video model
see where the robot has to go? Scored per task as squared error over the task's variance in training.

    python benchmarks/probe.py --train D5/demos/data --test D5/heldout/data \
        --video scratch=D5/A0x/vpdd/seed0/train/policy --video pretrained=D5/A20x/pretrain/run --out probe.json
    python benchmarks/probe.py --target goal --train full_train --test full_test --video ... --out goal.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from _common import first_sentence
from _imagination import action_errors

ALPHAS = (1e-2, 1e-1, 1, 10, 100, 1000)
TARGETS = {"action": None, "goal": slice(36, 39), "object": slice(4, 7)}  # where in Meta-World's 39-d state


def pooled(feats: torch.Tensor, grid: tuple[int, int], cells: int = 4) -> np.ndarray:
    """``feats (b, n, w)`` over an ``h x w`` token grid -> the mean over all tokens and over each of ``cells x
    cells`` squares, ``(b, (1 + cells²) w)``: where things are survives, at a size a ridge probe can fit."""
    b, _, w = feats.shape
    x = feats.float().reshape(b, *grid, w).permute(0, 3, 1, 2)
    squares = torch.nn.functional.adaptive_avg_pool2d(x, cells).flatten(2).transpose(1, 2).flatten(1)
    return torch.cat([x.mean((2, 3)), squares], 1).numpy()


def ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Standardised ridge regression: (mean, scale, weights, bias) with ``y ≈ ((x - mean) / scale) @ W + bias``."""
    mean, scale = x.mean(0), x.std(0) + 1e-6
    z = (x - mean) / scale
    w = np.linalg.solve(z.T @ z + alpha * len(z) * np.eye(z.shape[1]), z.T @ (y - y.mean(0)))
    return mean, scale, w, y.mean(0)


def fit_predict(x: np.ndarray, y: np.ndarray, groups: np.ndarray, x_test: np.ndarray) -> np.ndarray:
    """Ridge with alpha picked on a fifth of the training groups (episodes) held out, refitted on all of them."""
    val = np.isin(groups, np.unique(groups)[::5])
    def err(a):
        m, s, w, b = ridge(x[~val], y[~val], a)
        return (((x[val] - m) / s @ w + b - y[val]) ** 2).mean()
    m, s, w, b = ridge(x, y, min(ALPHAS, key=err))
    return (x_test - m) / s @ w + b


def samples(eps, every: int, horizon: int, gap: int, limit: int) -> list[tuple[int, int]]:
    items = [(i, t) for i in range(len(eps)) for t in range(0, eps.episodes[i].length - max(gap, horizon), every)]
    pick = np.random.default_rng(0).choice(len(items), min(limit, len(items)), replace=False)
    return [items[k] for k in sorted(pick)]


@torch.no_grad()
def features(video_dir: str, eps, picks, gap: int, imagine: int = 0, batch: int = 16) -> dict[str, np.ndarray]:
    """Pooled features of every sample, future masked and future in view, through this video model; ``imagine``
    > 0: also of the future it imagines in that many denoising steps, in view."""
    from vidpolicy.common.device import bf16
    from vidpolicy.common.pretrained import load_model
    from vidpolicy.common.text import TextEncoder
    from vidpolicy.finetune.data import tokenize_episodes
    from vidpolicy.pretrain.model import FutureDenoiser
    from vidpolicy.pretrain.sample import sample_tokens
    from vidpolicy.pretrain.schedule import MaskReplaceScheduler

    fresh = video_dir.startswith("random:")
    where = video_dir.removeprefix("random:")
    video = load_model(FutureDenoiser, where, "video_model" if (Path(where) / "video_model").exists() else "model")
    if fresh:
        torch.manual_seed(0)
        video = FutureDenoiser.from_config(video.config)
    video.eval()
    with tempfile.TemporaryDirectory() as d:
        toks = tokenize_episodes(eps, Path(where) / "tokenizer", Path(d) / "tokens")
    text = TextEncoder("all-MiniLM-L6-v2")
    grid = tuple(video.config.latent_shape[1:])
    scheduler = MaskReplaceScheduler.load(where, video.config.num_timesteps)
    out: dict[str, list] = {"masked": [], "future": [], **({"imagined": []} if imagine else {})}
    gen = torch.Generator().manual_seed(0)
    for b in range(0, len(picks), batch):
        chunk = picks[b : b + batch]
        hist = torch.from_numpy(np.stack([toks[i][t] for i, t in chunk]).astype(np.int64))
        fut = torch.from_numpy(np.stack([toks[i][t + gap] for i, t in chunk]).astype(np.int64))
        with bf16("cpu"):
            ctx = video.context(hist, video.text_input(text([eps.episodes[i].task for i, _ in chunk])))
            zeros, T = torch.zeros(len(chunk), dtype=torch.long), video.config.num_timesteps
            out["masked"].append(pooled(video.denoise(torch.full_like(fut, video.mask_id), zeros + T, ctx)[1], grid))
            out["future"].append(pooled(video.denoise(fut, zeros, ctx)[1], grid))
            if imagine:
                def predict(x, t):
                    return {"video": video.denoise(x["video"], zeros + t, ctx)[0]}
                clip = sample_tokens(predict, scheduler, {"video": (fut.shape[1], video.config.codebook_size)},
                                     len(chunk), imagine, 0.88, gen)["video"]
                out["imagined"].append(pooled(video.denoise(clip, zeros, ctx)[1], grid))
    return {k: np.concatenate(v) for k, v in out.items()}


def probe(train: str, test: str, videos: dict[str, str], every: int = 5, limit: int = 400, test_limit: int = 128,
          horizon: int = 4, gap: int = 20, imagine: int = 6, target: str = "action") -> dict:
    from vidpolicy.datasets.robot import RobotEpisodes

    sets = {name: RobotEpisodes(path, size=96) for name, path in (("train", train), ("test", test))}
    picks = {"train": samples(sets["train"], every, horizon, gap, limit),
             "test": samples(sets["test"], every, horizon, gap, test_limit)}
    tasks = sorted({e.task for e in sets["train"].episodes})
    where = TARGETS[target]
    for name, eps in sets.items():
        if where is not None and eps.states(0).shape[1] < 39:
            raise SystemExit(f"{(train, test)[name == 'test']}: --target {target} needs the 39-d state "
                             "(collect with --state full)")
    labels = {name: np.array([sets[name].episodes[i].task for i, _ in picks[name]]) for name in sets}
    def task(name):  # a one-hot of each sample's task
        return (labels[name][:, None] == np.array(tasks)).astype(np.float64)
    def base(name):  # the state the policy sees (agent_pos where the target is in the state) and the task
        dims = slice(None) if where is None else slice(0, 4)
        return np.hstack([np.stack([sets[name].states(i)[t, dims] for i, t in picks[name]]), task(name)])
    def truth(name):
        eps = sets[name]
        if where is None:
            return np.stack([eps.actions(i)[t : t + horizon] for i, t in picks[name]])
        return np.stack([eps.states(i)[t, where] for i, t in picks[name]])
    y, expert = truth("train"), truth("test")
    groups = np.array([i for i, _ in picks["train"]])
    var = sets["train"].action_variance() if where is None else {t: y[labels["train"] == t].var(0) for t in tasks}
    def score(x, x_test):
        pred = fit_predict(x, y.reshape(len(y), -1), groups, x_test).reshape(expert.shape)
        if where is not None:
            return position_errors(pred, expert, labels["test"], var)
        return {k: round(v, 4) for k, v in action_errors(pred, expert, var).items()}
    xb, xb_test = base("train"), base("test")
    result = {"target": target, "samples": {k: len(v) for k, v in picks.items()}, "state_task": score(xb, xb_test),
              "train_mean": score(np.zeros((len(y), 1)), np.zeros((len(expert), 1))) if where is None else
              score(task("train"), task("test"))}  # where the target is: the task's mean position
    if where is not None:
        result["pixels"] = score(np.hstack([xb, pixels(sets["train"], picks["train"])]),
                                 np.hstack([xb_test, pixels(sets["test"], picks["test"])]))
        imagine = 0  # the scene is in the history; an imagined future adds nothing to find it
    for name, at in videos.items():
        f, f_test = (features(at, sets[k], picks[k], gap, imagine=imagine) for k in ("train", "test"))
        result[name] = {view: score(np.hstack([xb, f[view]]), np.hstack([xb_test, x])) for view, x in f_test.items()}
        if imagine:  # fitted on the true future, scored on the imagined one: how act_on "imagined" trains and acts
            result[name]["imagined_through_true"] = score(np.hstack([xb, f["future"]]),
                                                          np.hstack([xb_test, f_test["imagined"]]))
    return result


def position_errors(pred: np.ndarray, truth: np.ndarray, tasks: np.ndarray, var: dict) -> dict:
    """Squared error over each task's training variance (``var[task]``, per coordinate; those that never vary are
    left out, and tasks where none does), per task and its mean over tasks."""
    per_task = {}
    for t, v in var.items():
        rows, vary = tasks == t, v > 1e-6
        if rows.any() and vary.any():
            per_task[t] = round(float(((pred[rows] - truth[rows])[:, vary] ** 2 / v[vary]).mean()), 4)
    return {"nmse": round(float(np.mean(list(per_task.values()))), 4), **per_task}


def pixels(eps, picks, side: int = 24) -> np.ndarray:
    """The frame at each sample's time, averaged down to ``side``², as one row of floats."""
    frames = [eps.frames(i)[t].astype(np.float32) for i, t in picks]
    k = frames[0].shape[0] // side
    return np.stack([f[: side * k, : side * k].reshape(side, k, side, k, 3).mean((1, 3)).ravel() for f in frames])


def main() -> None:
    ap = argparse.ArgumentParser(description=first_sentence(__doc__))
    ap.add_argument("--train", required=True, help="LeRobotDataset the probes are fitted on")
    ap.add_argument("--test", required=True, help="LeRobotDataset they are scored on")
    ap.add_argument("--video", action="append", required=True, help="NAME=DIR (or NAME=random:DIR); repeatable")
    ap.add_argument("--limit", type=int, default=400, help="training samples (default 400)")
    ap.add_argument("--test-limit", type=int, default=128, help="test samples (default 128)")
    ap.add_argument("--target", choices=tuple(TARGETS), default="action",
                    help="what the probes predict (default action)")
    ap.add_argument("--out", required=True, help="JSON written here")
    a = ap.parse_args()
    result = probe(a.train, a.test, dict(v.split("=", 1) for v in a.video), limit=a.limit,
                   test_limit=a.test_limit, target=a.target)
    Path(a.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
