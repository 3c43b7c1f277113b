"""Command-line flags generated from a stage's config dataclass, so flags, config.json and code never drift.

Each field becomes ``--field-name`` with the help text from its metadata (``advanced=True``: listed in the
"advanced" group, for tuning knobs few users touch); ``--config FILE.json`` supplies a base config (strictly checked)
that explicit flags override; a required flag may come from it instead of the command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import field
from typing import Any

from vidpolicy.common.config import from_dict, load_config, preset_values, to_dict
from vidpolicy.common.errors import VidpolicyError


def opt(default: Any, help: str, **kw) -> Any:
    """A config field with its ``--help`` text."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


def _base_type(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if args else str
    return tp


def add_config_args(parser: argparse.ArgumentParser, cls: type, required: tuple[str, ...] = (),
                    skip: tuple[str, ...] = ()) -> None:
    hints = typing.get_type_hints(cls)
    advanced = parser.add_argument_group("advanced (tuning knobs; docs/experiments.md has what they were measured "
                                         "to do)")
    for f in dataclasses.fields(cls):
        if f.name in skip or f.metadata.get("cli") is False:
            continue
        flag = "--" + f.name.replace("_", "-")
        tp = _base_type(hints[f.name])
        helptext = f.metadata.get("help", "").replace("%", "%%")  # argparse formats help with %
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if f.name in required:  # checked in config_from_args: a --config may give it
            helptext += " (required)"
        elif default not in (None, "", [], ()):
            helptext += f" (default: {default})"
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": helptext}
        origin = typing.get_origin(tp)
        if tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif origin in (list, tuple):
            (arg, *_) = typing.get_args(tp) or (str,)
            kwargs.update(nargs="+", type=arg if arg in (int, float) else str)
        elif tp in (int, float):
            kwargs["type"] = tp
            kwargs["metavar"] = "N" if tp is int else "X"
        else:
            kwargs["type"] = str
        (advanced if f.metadata.get("advanced") else parser).add_argument(flag, **kwargs)
    if getattr(cls, "PRESETS", None):
        parser.add_argument("--preset", dest="_preset", choices=list(cls.PRESETS), default=None,
                            help="model sizes: tiny (tests), small (CPU), base or large (GPU) (default: small)")
    parser.add_argument("--config", dest="_config", default=None, metavar="FILE.json",
                        help="start from a saved config.json; flags given here override it")
    parser.set_defaults(_required=tuple(required))


def config_from_args(cls: type, args: argparse.Namespace, **forced) -> Any:
    base = to_dict(load_config(cls, args._config)) if getattr(args, "_config", None) else {}
    names = {f.name for f in dataclasses.fields(cls)}
    given = {k: v for k, v in vars(args).items() if k in names}
    if missing := [n for n in getattr(args, "_required", ()) if n not in given and n not in base]:
        *rest, last = ["--" + n.replace("_", "-") for n in missing]
        flags = f"{', '.join(rest)} and {last}" if rest else last
        raise VidpolicyError(f"{flags} {'are' if len(missing) > 1 else 'is'} required (on the command line or in "
                             "a --config file)")
    preset = preset_values(cls, args._preset) if getattr(args, "_preset", None) else {}
    return from_dict(cls, {**preset, **base, **given, **forced},
                     source=getattr(args, "_config", None) or "command line")


def add_run_flags(parser: argparse.ArgumentParser, resume: bool = True) -> None:
    """``--overwrite`` (and ``--resume``) for commands that write a run directory."""
    parser.add_argument("--overwrite", action="store_true", help="replace a different run's output in --out")
    if resume:
        parser.add_argument("--resume", action="store_true",
                            help="continue from the newest checkpoint in --out (a plain rerun does too)")
