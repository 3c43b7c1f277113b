"""Sub-commands of the later stages: pretrain, imagine, collect, finetune, rollout, demo."""

from __future__ import annotations

from vidpolicy.common.cli_args import add_config_args, add_run_flags, config_from_args


def cmd_pretrain(args):
    from vidpolicy.pretrain.config import PretrainConfig
    from vidpolicy.pretrain.train import pretrain

    pretrain(config_from_args(PretrainConfig, args), overwrite=args.overwrite)


def cmd_imagine(args):
    from vidpolicy.pretrain.imagine import imagine_video

    imagine_video(args.model, args.video, args.instruction, args.out, steps=args.steps, start=args.start,
                  fps=args.fps, top_r=args.top_r, guidance=args.guidance, seed=args.seed)


def register(sub) -> None:
    from vidpolicy.pretrain.config import PretrainConfig

    p = sub.add_parser("pretrain", help="train the discrete-diffusion future predictor on token shards",
                       description="Pre-train the mask-and-replace denoiser on (history, future) token pairs.")
    add_config_args(p, PretrainConfig, required=("tokens", "tokenizer", "out"))
    add_run_flags(p)
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser("imagine", help="history clip + instruction -> imagined future clip (mp4 + contact sheet)")
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
    p.set_defaults(func=cmd_imagine)

    from vidpolicy import cli_robot

    cli_robot.register(sub)
