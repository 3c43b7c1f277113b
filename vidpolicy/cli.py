"""``vidpolicy`` command line.

Every stage command builds its config from flags (and optionally ``--config FILE.json``), runs it, and turns a
`VidpolicyError` into one line on stderr and exit status 2. Process-wide settings (environment, allocator, dying
with a launcher) are made here, in the entry point, never inside library calls.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

from vidpolicy.common.cli_args import add_config_args, add_run_flags, config_from_args
from vidpolicy.common.errors import VidpolicyError


@dataclass(frozen=True)
class Command:
    """A stage command runs ``run(config, overwrite=...)`` with its config dataclass built from flags; any other
    command adds its own flags (``flags``)."""

    path: tuple[str, ...]  # ("tokenizer", "train")
    help: str
    config: str = ""  # "module:Class"
    run: str = ""  # "module:function"
    required: tuple[str, ...] = ()
    description: str = ""
    resume: bool = False
    flags: Callable[[argparse.ArgumentParser], None] | None = None


VERBOSE_HELP = "show third-party logs, bars and warnings (also VIDPOLICY_VERBOSE=1)"


def _load(ref: str):
    module, name = ref.split(":")
    return getattr(importlib.import_module(module), name)


def _run_stage(cmd: Command, args) -> None:
    _load(cmd.run)(config_from_args(_load(cmd.config), args), overwrite=args.overwrite)


def cmd_tokenizer_reconstruct(args):
    from vidpolicy.tokenizer.reconstruct import reconstruct

    reconstruct(args.tokenizer, args.video, args.out, fps=args.fps)


def cmd_imagine(args):
    from vidpolicy.pretrain.imagine import imagine_video

    imagine_video(args.model, args.video, args.instruction, args.out, steps=args.steps, start=args.start,
                  fps=args.fps, top_r=args.top_r, guidance=args.guidance, seed=args.seed, device=args.device)


def _reconstruct_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tokenizer", required=True, help="a `tokenizer train` run directory")
    p.add_argument("--video", required=True, help="the video file to reconstruct")
    p.add_argument("--out", required=True, help="output .mp4 (original left, reconstruction right)")
    p.add_argument("--fps", type=float, default=None, help="sample the video at this frame rate")
    p.set_defaults(func=cmd_tokenizer_reconstruct)


def _imagine_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="a `pretrain` run directory")
    p.add_argument("--video", required=True, help="video whose clip at --start is the history")
    p.add_argument("--instruction", required=True, help="what should happen, in words")
    p.add_argument("--out", required=True, help="output .mp4: history | imagined | truth (when the video goes on)")
    p.add_argument("--steps", type=int, default=25, help="reverse diffusion steps (respaced from T)")
    p.add_argument("--start", type=int, default=0, help="first (sampled) frame of the history clip")
    p.add_argument("--fps", type=float, default=None, help="sample the video at this frame rate")
    p.add_argument("--top-r", dest="top_r", type=float, default=None, help="top-r truncation (paper: 0.88)")
    p.add_argument("--guidance", type=float, default=1.0, help="classifier-free guidance scale (1 = off)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--device", default="auto", help="cpu, cuda[:N] or auto (cuda when there is one) (default: auto)")
    p.set_defaults(func=cmd_imagine)


COMMANDS = (
    Command(("tokenizer", "train"), "train the 3D VQ-VAE on a folder of videos",
            "vidpolicy.tokenizer.config:TokenizerTrainConfig", "vidpolicy.tokenizer.train:train_tokenizer",
            ("videos", "out"), "Train the 3D VQ-VAE video tokenizer on a video corpus.", resume=True),
    Command(("tokenizer", "reconstruct"), "original | reconstruction mp4 of one video; prints PSNR / SSIM",
            flags=_reconstruct_flags),
    Command(("tokenize",), "video corpus or LeRobotDataset -> token shards + index.json",
            "vidpolicy.tokenizer.config:TokenizeConfig", "vidpolicy.tokenizer.tokenize:tokenize", ("tokenizer", "out"),
            "Tokenize every clip of a corpus into shards; resumable, multi-process."),
    Command(("pretrain",), "train the discrete-diffusion future predictor on token shards",
            "vidpolicy.pretrain.config:PretrainConfig", "vidpolicy.pretrain.train:pretrain",
            ("tokens", "tokenizer", "out"), "Pre-train the mask-and-replace denoiser on (history, future) token pairs.",
            resume=True),
    Command(("imagine",), "history clip + instruction -> imagined future clip (mp4 + contact sheet)",
            flags=_imagine_flags),
    Command(("collect",), "scripted-expert demos -> LeRobotDataset (H.264)", "vidpolicy.envs.collect:CollectConfig",
            "vidpolicy.envs.collect:collect", ("tasks", "out")),
    Command(("finetune",), "train the action model on robot demos, conditioned on imagined futures",
            "vidpolicy.finetune.config:FinetuneConfig", "vidpolicy.finetune.train:finetune",
            ("pretrained", "dataset", "out"), resume=True),
    Command(("rollout",), "run a policy (or the experts) on Meta-World; results.json, videos/, success.png",
            "vidpolicy.envs.rollout_config:RolloutConfig", "vidpolicy.envs.rollout:rollout", ("tasks", "out")),
    Command(("demo",), "the whole pipeline at a small size on generated data", "vidpolicy.demo:DemoConfig",
            "vidpolicy.demo:run_demo"),
)


def build_parser() -> argparse.ArgumentParser:
    from vidpolicy import __version__

    parser = argparse.ArgumentParser(prog="vidpolicy", description="Learn robot policies from actionless video: "
                                     "tokenize, pre-train, fine-tune, roll out (VPDD).")
    parser.add_argument("--version", action="version", version=f"vidpolicy {__version__}")
    parser.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", required=True)
    tokenizer = sub.add_parser("tokenizer", help="train or inspect the VQ video tokenizer")
    groups = {("tokenizer",): tokenizer.add_subparsers(dest="subcommand", required=True)}
    for cmd in COMMANDS:
        p = groups.get(cmd.path[:-1], sub).add_parser(cmd.path[-1], help=cmd.help,
                                                       description=cmd.description or cmd.help)
        p.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
        if cmd.flags is not None:
            cmd.flags(p)
            continue
        add_config_args(p, _load(cmd.config), required=cmd.required)
        add_run_flags(p, resume=cmd.resume)
        p.set_defaults(func=lambda args, cmd=cmd: _run_stage(cmd, args))
    return parser


def _setup_process(verbose: bool) -> None:
    """What every command wants of its process, set before any library call: after its flags are read, which loads
    none (so `--help` and a wrong flag answer without torch)."""
    from vidpolicy.common.malloc import keep_freed_memory
    from vidpolicy.common.workers import die_with_parent, launched_by_torchrun

    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # weights come from installed packages; never wait on a hub
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not verbose:
        quiet_libraries()
    if launched_by_torchrun():
        die_with_parent()  # a killed launcher takes its ranks with it
    import torch

    if not torch.cuda.is_available():  # CPU tensors are allocated and freed batch after batch; GPU ones are not
        keep_freed_memory()


def quiet_libraries() -> None:
    """One progress bar per stage and our own summary: third-party bars, encoder logs and known-harmless warnings
    stay off (``--verbose`` or VIDPOLICY_VERBOSE=1 keeps them)."""
    import warnings

    import av
    import decord

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # transformers' "Loading weights" follows it
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")  # LeRobot's per-episode "Map" bars
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    av.logging.set_libav_level(av.logging.ERROR)  # libx264 statistics, muxer notes: FFmpeg prints below ERROR
    decord.logging.set_level(decord.logging.ERROR)
    # the scripted experts' gains exceed the action bounds by design; the env clips them
    warnings.filterwarnings("ignore", message=r"Constant\(s\) may be too high", category=UserWarning)
    # LeRobot turns the datasets bars back on after each load; the variable above keeps them off
    warnings.filterwarnings("ignore", message="Cannot enable progress bars", category=UserWarning)


def _leave_distributed(code: int) -> None:
    """In a launched process (torchrun / accelerate launch): destroy the process group and exit without
    interpreter finalization, where gloo on a CPU sometimes aborts or hangs (pytorch/pytorch#190489)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        try:
            dist.destroy_process_group()
        except Exception:  # already torn down by the failing command; nothing left to release
            pass
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    _setup_process(verbose="--verbose" in argv or os.environ.get("VIDPOLICY_VERBOSE") == "1")
    code = 0
    try:
        args.func(args)
    except VidpolicyError as e:
        from vidpolicy.common.trainer import TrainingDiverged

        print(f"error: {e}", file=sys.stderr)
        code = 3 if isinstance(e, TrainingDiverged) else 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        code = 130
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EIO):
            raise
        where = e.filename or "output"
        print(f"error: {where}: {e.strerror or e}; finished outputs are intact, free space and rerun to resume",
              file=sys.stderr)
        code = 4
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        _leave_distributed(code)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
