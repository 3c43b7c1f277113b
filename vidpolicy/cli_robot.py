"""Sub-commands of the robot side: collect, finetune, rollout, demo."""

from __future__ import annotations


def register(sub) -> None:
    return None
