"""The whole pipeline as library calls, shared by ``vidpolicy demo`` and the benchmarks.

Collect Meta-World expert demos for a few tasks; take expert videos of *other* tasks (and human videos when given)
as the actionless corpus; train the tokenizer; tokenize; pre-train; imagine; fine-tune; roll out. Every stage writes
the same directory a standalone command would, so each can be inspected or rerun by hand. ``s`` is a budget: the
sizes and step counts of every stage (see `vidpolicy.demo.SIZES`).
"""

from __future__ import annotations

import time
from pathlib import Path

from vidpolicy.common.io import write_text
from vidpolicy.datasets.video import find_videos


def run_pipeline(out: Path, s: dict, tasks: str, actionless_tasks: str, human_videos: str | None = None,
                 overwrite: bool = False, compare_scratch: bool = False, eval_seed: int = 1000,
                 compare_joint: bool = False) -> dict:
    """collect -> tokenizer -> tokenize -> pretrain -> imagine -> finetune -> rollout, the demos replayed blind in
    the rollout's scenes beside it (the floor its success has to clear). The policy keeps the pre-trained video model
    frozen (the paper); ``compare_scratch`` adds the same architecture from scratch (video model trained with the
    actions), ``compare_joint`` the pre-trained one trained jointly the same way."""
    from vidpolicy.envs.collect import CollectConfig, collect
    from vidpolicy.tokenizer.config import TokenizeConfig, TokenizerTrainConfig
    from vidpolicy.tokenizer.tokenize import tokenize
    from vidpolicy.tokenizer.train import train_tokenizer

    times: dict[str, float] = {}

    def stage(name: str):
        print(f"\n=== {name} ===", flush=True)
        times[name] = time.time()

    def done(name: str):
        times[name] = time.time() - times[name]

    stage("collect")
    view = s.get("view", "vidpolicy")
    collect(CollectConfig(tasks=tasks, episodes=s["demos"], out=str(out / "robot_demos"), size=s["size"], view=view))
    collect(CollectConfig(tasks=actionless_tasks, episodes=s["actionless"], out=str(out / "actionless"),
                          size=s["size"], seed=500, view=view))
    done("collect")

    stage("tokenizer")
    videos = find_videos(out / "actionless" / "videos") + find_videos(out / "robot_demos" / "videos")
    if human_videos:
        videos += find_videos(human_videos)
    write_text(out / "tokenizer_videos.txt", "\n".join(str(v.resolve()) for v in videos) + "\n")
    # left-right flips only: fixed-camera robot frames are never upside down, reversed or transposed (the htvd
    # default for video corpora reconstructed the demo's frames worse); whole clips every step, as measured
    tok = train_tokenizer(TokenizerTrainConfig(
        videos=str(out / "tokenizer_videos.txt"), out=str(out / "tokenizer"), size=s["size"],
        codebook_size=s["codebook"], hidden_channels=s["hidden"], max_steps=s["tok_steps"], flips="h", small_crops=0.0,
        batch_size=s["tok_batch"], save_every=max(50, s["tok_steps"] // 2), num_workers=1), overwrite=overwrite)
    done("tokenizer")

    stage("tokenize")
    token_dirs = []
    for name, src in (("tokens_actionless", "actionless"), ("tokens_robot", "robot_demos")):
        tokenize(TokenizeConfig(tokenizer=str(out / "tokenizer"), out=str(out / name), dataset=str(out / src),
                                num_workers=1), overwrite=overwrite)
        token_dirs.append(str(out / name))
    if human_videos:
        tokenize(TokenizeConfig(tokenizer=str(out / "tokenizer"), out=str(out / "tokens_human"), videos=human_videos,
                                num_workers=1), overwrite=overwrite)
        token_dirs.append(str(out / "tokens_human"))
    done("tokenize")

    stage("pretrain")
    pretrain_stage(out, s, token_dirs, overwrite)
    done("pretrain")

    stage("imagine")
    imagined = imagine_stage(out)
    done("imagine")

    variants = [("policy", False, False)] + ([("policy_scratch", True, True)] if compare_scratch else []) + (
        [("policy_joint", False, True)] if compare_joint else [])
    results, finetuned = {}, {}
    for name, scratch, joint in variants:
        stage(f"finetune:{name}")
        finetuned[name] = finetune_variant(out, s, name, scratch, joint, overwrite)
        done(f"finetune:{name}")
        stage(f"rollout:{name}")
        results[name] = rollout_variant(out, s, tasks, name, eval_seed)
        done(f"rollout:{name}")
    res = results["policy"]
    blind = {t: r["blind_replay_rate"] for t, r in res.items() if isinstance(r, dict)}
    return {
        "tokenizer_psnr_db": tok.get("heldout", {}).get("psnr"),
        "imagined_token_accuracy": imagined.get("token_accuracy"),
        "copy_history_token_accuracy": imagined.get("copy_history", {}).get("token_accuracy"),
        "success": {t: r["success_rate"] for t, r in res.items() if isinstance(r, dict)},
        "mean_success_rate": res["mean_success_rate"],
        "blind_replay_success": blind, "mean_blind_replay_success": sum(blind.values()) / len(blind),
        "variants": {k: {"mean_success_rate": v["mean_success_rate"],
                         "success": {t: r["success_rate"] for t, r in v.items() if isinstance(r, dict)}}
                     for k, v in results.items()},
        "finetune_steps": finetuned["policy"].get("steps"),
        "stage_seconds": {k: round(v, 1) for k, v in times.items()},
        "outputs": {"rollout_videos": str(out / "rollout_policy" / "videos"),
                    "success_plot": str(out / "rollout_policy" / "success.png"),
                    "imagine_video": str(out / "imagine.mp4"), "imagine_sheet": str(out / "imagine.png"),
                    "loss_plots": [str(out / d / "loss.png") for d in ("tokenizer", "pretrain", "policy")]},
    }


def mix_weights(token_dirs: list[str], robot_dir: str, robot_share: float | None) -> list[float] | None:
    """Pre-training sampling weights that give ``robot_dir`` (the demo videos of the target tasks, actions unused)
    ``robot_share`` of the samples and split the rest equally; None (every directory alike) without a share."""
    if robot_share is None or len(token_dirs) < 2:
        return None
    rest = (1 - robot_share) / (len(token_dirs) - 1)
    return [robot_share if d == robot_dir else rest for d in token_dirs]


def pretrain_stage(out: Path, s: dict, token_dirs: list[str], overwrite: bool = False) -> dict:
    """Pre-train ``out/pretrain`` on ``token_dirs`` with the budget ``s`` (``s["robot_share"]``: see mix_weights)."""
    from vidpolicy.pretrain.config import PretrainConfig
    from vidpolicy.pretrain.train import pretrain

    weights = mix_weights(token_dirs, str(out / "tokens_robot"), s.get("robot_share"))
    return pretrain(PretrainConfig(
        tokens=token_dirs, token_weights=weights, tokenizer=str(out / "tokenizer"), out=str(out / "pretrain"),
        width=s["width"], depth=s["depth"], heads=2, max_steps=s["pre_steps"], warmup_steps=s["pre_steps"] // 10,
        ema_start=s["pre_steps"] // 2, ema_every=1, save_every=max(50, s["pre_steps"] // 2), lr=1e-3),
        overwrite=overwrite)


def imagine_stage(out: Path) -> dict:
    """``out/imagine.mp4``: the pre-trained model imagines the first robot demo; its token accuracy."""
    from vidpolicy.pretrain.imagine import imagine_video

    demo_video = sorted((out / "robot_demos" / "videos").rglob("*.mp4"))[0]
    return imagine_video(str(out / "pretrain"), str(demo_video), "reach the goal position with the gripper",
                         str(out / "imagine.mp4"), steps=25)


def finetune_variant(out: Path, s: dict, name: str, scratch: bool, joint: bool, overwrite: bool = False,
                     video_lr: float | None = None, seed: int = 0, detach: bool = False) -> dict:
    """Fine-tune ``out/name`` from ``out/pretrain`` on ``out/robot_demos`` with the budget ``s``."""
    from vidpolicy.finetune.config import FinetuneConfig
    from vidpolicy.finetune.train import finetune

    return finetune(FinetuneConfig(
        pretrained=str(out / "pretrain"), dataset=str(out / "robot_demos"), out=str(out / name),
        from_scratch=scratch, train_video=joint, depth=s["ft_depth"], max_steps=s["ft_steps"],
        warmup_steps=s["ft_steps"] // 10, save_every=max(50, s["ft_steps"] // 2), execute=4,
        sampling_steps=s["sampling_steps"], lr=1e-3, video_lr=video_lr, seed=seed,
        detach_video_features=detach), overwrite=overwrite)


def rollout_dir(name: str, execute: int | None = None, guidance: float | None = None, yuv420: bool = False) -> str:
    """``rollout_{name}``, with ``_execute{N}`` / ``_guidance{G}`` / ``_yuv420`` for the rollout overrides."""
    return (f"rollout_{name}" + (f"_execute{execute}" if execute else "")
            + (f"_guidance{guidance:g}" if guidance is not None else "") + ("_yuv420" if yuv420 else ""))


def rollout_variant(out: Path, s: dict, tasks: str, name: str, eval_seed: int = 1000,
                    execute: int | None = None, guidance: float | None = None, yuv420: bool = False) -> dict:
    """Roll ``out/name`` out into ``out/rollout_dir(name, execute, guidance, yuv420)``."""
    from vidpolicy.envs.rollout import RolloutConfig, rollout

    report = out / rollout_dir(name, execute, guidance, yuv420)
    return rollout(RolloutConfig(policy=str(out / name), tasks=tasks, episodes=s["episodes"], out=str(report),
                                 max_steps=s["max_steps"], seed=eval_seed, execute=execute, guidance=guidance,
                                 yuv420=yuv420 or None, view=s.get("view", "vidpolicy"),
                                 blind_floor=str(out / "robot_demos")), overwrite=True)
