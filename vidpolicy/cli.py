"""``vidpolicy`` command line (see ../shared/CLI.md for the public interface).

Every command builds its stage's config from flags (and optionally ``--config FILE.json``), runs it, and turns a
`VidpolicyError` into one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys

from vidpolicy.common.cli_args import add_config_args, add_run_flags, config_from_args
from vidpolicy.common.errors import VidpolicyError
from vidpolicy.common.malloc import keep_freed_memory
from vidpolicy.common.workers import die_with_parent, launched_by_torchrun

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def cmd_tokenizer_train(args):
    from vidpolicy.tokenizer.config import TokenizerTrainConfig
    from vidpolicy.tokenizer.train import train_tokenizer

    train_tokenizer(config_from_args(TokenizerTrainConfig, args), overwrite=args.overwrite)


def cmd_tokenizer_reconstruct(args):
    from vidpolicy.tokenizer.reconstruct import reconstruct

    reconstruct(args.tokenizer, args.video, args.out, fps=args.fps)


def cmd_tokenize(args):
    from vidpolicy.tokenizer.config import TokenizeConfig
    from vidpolicy.tokenizer.tokenize import tokenize

    tokenize(config_from_args(TokenizeConfig, args), overwrite=args.overwrite)


def build_parser() -> argparse.ArgumentParser:
    from vidpolicy import __version__

    parser = argparse.ArgumentParser(prog="vidpolicy", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"vidpolicy {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    tok = sub.add_parser("tokenizer", help="train or inspect the VQ video tokenizer")
    tsub = tok.add_subparsers(dest="subcommand", required=True)
    from vidpolicy.tokenizer.config import TokenizeConfig, TokenizerTrainConfig

    p = tsub.add_parser("train", help="train the 3D VQ-VAE on a folder of videos",
                        description="Train the 3D VQ-VAE video tokenizer on a video corpus.")
    add_config_args(p, TokenizerTrainConfig, required=("videos", "out"))
    add_run_flags(p)
    p.set_defaults(func=cmd_tokenizer_train)

    p = tsub.add_parser("reconstruct", help="original | reconstruction mp4 of one video; prints PSNR / SSIM")
    p.add_argument("--tokenizer", required=True, help="a `tokenizer train` run directory")
    p.add_argument("--video", required=True, help="the video file to reconstruct")
    p.add_argument("--out", required=True, help="output .mp4 (original left, reconstruction right)")
    p.add_argument("--fps", type=float, default=None, help="sample the video at this frame rate")
    p.set_defaults(func=cmd_tokenizer_reconstruct)

    p = sub.add_parser("tokenize", help="video corpus or LeRobotDataset -> token shards + index.json",
                       description="Tokenize every clip of a corpus into shards; resumable, multi-process.")
    add_config_args(p, TokenizeConfig, required=("tokenizer", "out"))
    add_run_flags(p, resume=False)
    p.set_defaults(func=cmd_tokenize)

    from vidpolicy import cli_stages

    cli_stages.register(sub)
    return parser


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
    parser = build_parser()
    args = parser.parse_args(argv)
    if launched_by_torchrun():
        die_with_parent()  # a killed launcher takes its ranks with it
    keep_freed_memory()  # every command allocates and frees the same tensors batch after batch
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
