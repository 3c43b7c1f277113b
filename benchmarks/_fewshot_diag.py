"""Why one few-shot policy acts better than another, measured offline on held-out episodes of the target tasks
(expert episodes at the evaluation seeds, never trained on): how well each policy's video model imagines the future
clip ``gap`` steps ahead (token accuracy, beside copying the history clip), and how close its first action is to the
expert's (normalised MSE, bin accuracy). With ``swap`` (instruction -> its look-alike, e.g. the same scene's
actionless task: "open the door" -> "close the door") every sample is planned again with the other instruction and
the same noise: how much the imagined future and the first action follow the words, per task."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import torch

SWAP_MEASURES = ("acc", "acc_swap", "agree", "mse", "mse_swap")


def heldout_diagnostics(out: Path, tasks: str, size: int, policies: list[str], episodes: int = 2,
                        seed: int = 1000, samples: int = 96, every: int = 5,
                        swap: dict[str, str] | None = None) -> dict:
    from vidpolicy.datasets.robot import RobotEpisodes
    from vidpolicy.envs.collect import CollectConfig, collect
    from vidpolicy.finetune.data import tokenize_episodes
    from vidpolicy.finetune.offline import offline_eval
    from vidpolicy.policies.vpdd import VPDDPolicy

    held = out / "heldout_demos"
    collect(CollectConfig(tasks=tasks, episodes=episodes, out=str(held), size=size, seed=seed))
    eps = RobotEpisodes(str(held), size=size)
    result = {"episodes_per_task": episodes, "seeds_from": seed, "samples": samples, "swap": swap}
    # the held-out actions' variance normalises the action errors (as in offline_eval)
    var = eps.action_variance()
    for name in policies:
        pol = VPDDPolicy.from_pretrained(out / name)
        with tempfile.TemporaryDirectory() as d:  # not cached: the held-out set grows when --tasks changes
            toks = tokenize_episodes(eps, pol.tokenizer, Path(d) / "tokens.npz")
        gap = pol.config.gap
        items = [(i, t) for i in range(len(eps)) for t in range(0, eps.episodes[i].length - gap, every)]
        rng = np.random.default_rng(0)
        pick = [items[k] for k in rng.choice(len(items), min(samples, len(items)), replace=False)]
        imagined, copied, swapped = [], [], []
        for b in range(0, len(pick), 16):
            chunk = pick[b : b + 16]
            hist = torch.from_numpy(np.stack([toks[i][t] for i, t in chunk]).astype(np.int64))
            future = np.stack([toks[i][t + gap] for i, t in chunk]).astype(np.int64)
            states = pol.processor.state(np.stack([eps.states(i)[t] for i, t in chunk]) if eps.state_key else None)
            words = [eps.episodes[i].task for i, _ in chunk]
            video, acts = pol.plan(hist, pol.text(words), generator=torch.Generator().manual_seed(b), state=states)
            imagined += list((video.numpy() == future).mean(1))
            copied += list((hist.numpy() == future).mean(1))
            if swap:
                other, acts_s = pol.plan(hist, pol.text([swap.get(w, w) for w in words]),
                                         generator=torch.Generator().manual_seed(b), state=states)
                expert = np.stack([eps.actions(i)[t] for i, t in chunk])
                cols = {"acc": (video.numpy() == future).mean(1), "acc_swap": (other.numpy() == future).mean(1),
                        "agree": (other == video).float().mean(1).numpy(),
                        "mse": ((acts[:, 0] - expert) ** 2 / var).mean(1),
                        "mse_swap": ((acts_s[:, 0] - expert) ** 2 / var).mean(1)}
                swapped += [{"task": w, **{k: float(c[j]) for k, c in cols.items()}} for j, w in enumerate(words)]
        result[name] = {"imagined_token_accuracy": float(np.mean(imagined)),
                        "copy_history_token_accuracy": float(np.mean(copied)),
                        "first_action": offline_eval(out / name, eps, toks, list(range(len(eps))),
                                                     max_samples=samples)}
        if swap:
            # per instruction: token accuracy with the true / swapped words, imagined tokens that agree between the
            # two, first-action normalised MSE with the true / swapped words
            result[name]["instruction_swap"] = {
                w: {k: float(np.mean([r[k] for r in swapped if r["task"] == w])) for k in SWAP_MEASURES}
                for w in sorted({r["task"] for r in swapped})}
    return result


def watch_diagnostics(out: Path, tasks: str, size: int, policies: list[str], episodes: int = 2, seed: int = 1000,
                      max_steps: int = 150) -> dict:
    """The scripted expert drives and each policy only watches, planning before every action: its action error
    (normalised MSE, the demos' action variance) on the expert's own states from live frames — raw renders and
    through yuv420p — to set beside the offline check on the recorded video of the same episodes; and how many tokens
    of the live frames agree with the tokens of the recording (``heldout_demos``, the same seeds)."""
    from vidpolicy.common.media import yuv420_round_trip
    from vidpolicy.datasets.clips import to_unit_range
    from vidpolicy.datasets.robot import RobotEpisodes
    from vidpolicy.envs.collect import CollectConfig, collect
    from vidpolicy.envs.metaworld import MetaWorldEnv
    from vidpolicy.policies.vpdd import VPDDPolicy

    held = out / "heldout_demos"
    collect(CollectConfig(tasks=tasks, episodes=episodes, out=str(held), size=size, seed=seed))
    recorded = RobotEpisodes(str(held), size=size)
    var = RobotEpisodes(str(out / "robot_demos"), size=size).action_variance()
    tokenizer = VPDDPolicy.from_pretrained(out / policies[0]).tokenizer
    log = json.loads((held / "meta" / "vidpolicy_collect.json").read_text())["episodes"]

    def tokens(frames: np.ndarray) -> torch.Tensor:
        with torch.no_grad():
            return tokenizer.encode(torch.stack([to_unit_range(frames[i : i + 4])
                                                 for i in range(0, len(frames) - 3, 4)]))

    def expert_episode(e: dict, steps: int, until_success: bool = False):
        """(observation, expert action) along the scripted expert's episode ``e`` (its task and seed); the expert
        acts. ``steps`` observations at most; ``until_success``: the last is the one the success came after."""
        env = MetaWorldEnv(e["task"].removesuffix("-v3"), size=size, max_steps=500)
        obs, expert = env.reset(e["seed"]), env.expert()
        for k in range(steps):
            act = env.clip_action(expert(obs))
            yield obs, act
            if k == steps - 1:
                break  # no step past the last observation
            obs, _, done, info = env.step(act)
            if until_success and (done or info["success"]):
                break
        env.close()

    agree = {"raw": [], "yuv420": []}
    for k, e in enumerate(log):  # replay each recorded episode: the same states, live frames
        raw = [obs["image"] for obs, _ in expert_episode(e, e["length"])]
        n = min(len(raw), recorded.episodes[k].length) // 4 * 4
        ref = tokens(recorded.frames(k)[:n])
        live = {"raw": np.stack(raw[:n]), "yuv420": np.stack([yuv420_round_trip(f) for f in raw[:n]])}
        for mode, frames in live.items():
            agree[mode].append(float((tokens(frames) == ref).float().mean()))
    result = {"token_agreement_with_recording": {m: float(np.mean(v)) for m, v in agree.items()}}
    for name in policies:
        for yuv in (False, True):
            pol = VPDDPolicy.from_pretrained(out / name, execute=1, yuv420=yuv)
            errs = []
            for e in log:
                pol.reset()
                errs += [float(((np.clip(pol.select_action(obs), -1, 1) - act) ** 2 / var).mean())
                         for obs, act in expert_episode(e, max_steps, until_success=True)]
            result.setdefault(name, {})["yuv420" if yuv else "raw"] = float(np.mean(errs))
    return result
