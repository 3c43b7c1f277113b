"""Sub-commands of the later stages (pretrain, imagine, collect, finetune, rollout, demo)."""

from __future__ import annotations


def register(sub) -> None:
    return None
