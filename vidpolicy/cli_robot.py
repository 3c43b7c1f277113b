"""Sub-commands of the robot side: collect, finetune, rollout, demo."""

from __future__ import annotations

from vidpolicy.common.cli_args import add_config_args, add_run_flags, config_from_args


def cmd_collect(args):
    from vidpolicy.envs.collect import CollectConfig, collect

    collect(config_from_args(CollectConfig, args), overwrite=args.overwrite)


def cmd_finetune(args):
    from vidpolicy.finetune.config import FinetuneConfig
    from vidpolicy.finetune.train import finetune

    finetune(config_from_args(FinetuneConfig, args), overwrite=args.overwrite)


def cmd_rollout(args):
    from vidpolicy.envs.rollout import RolloutConfig, rollout

    rollout(config_from_args(RolloutConfig, args), overwrite=args.overwrite)


def cmd_demo(args):
    from vidpolicy.demo import DemoConfig, run_demo

    run_demo(config_from_args(DemoConfig, args), overwrite=args.overwrite)


def register(sub) -> None:
    from vidpolicy.demo import DemoConfig
    from vidpolicy.envs.collect import CollectConfig
    from vidpolicy.envs.rollout import RolloutConfig
    from vidpolicy.finetune.config import FinetuneConfig

    for name, cls, func, required, helptext in (
        ("collect", CollectConfig, cmd_collect, ("tasks", "out"), "scripted-expert demos -> LeRobotDataset (H.264)"),
        ("finetune", FinetuneConfig, cmd_finetune, ("pretrained", "dataset", "out"),
         "train the action model on robot demos, conditioned on imagined futures"),
        ("rollout", RolloutConfig, cmd_rollout, ("tasks", "out"),
         "run a policy (or the experts) on Meta-World; results.json, videos/, success.png"),
        ("demo", DemoConfig, cmd_demo, (), "the whole pipeline at a small size on generated data"),
    ):
        p = sub.add_parser(name, help=helptext, description=helptext)
        add_config_args(p, cls, required=required)
        add_run_flags(p, resume=name == "finetune")
        p.set_defaults(func=func)
