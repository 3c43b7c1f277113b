"""Meta-World v3 task names (MT10, MT50) and a short English instruction per task for language conditioning."""

from __future__ import annotations

from vidpolicy.common.errors import VidpolicyError

INSTRUCTIONS = {
    "assembly-v3": "put the ring on the peg", "basketball-v3": "dunk the ball into the basket",
    "bin-picking-v3": "move the puck from one bin to the other", "box-close-v3": "put the lid on the box",
    "button-press-topdown-v3": "press the button from the top", "button-press-topdown-wall-v3":
    "press the button from the top behind the wall", "button-press-v3": "press the button from the front",
    "button-press-wall-v3": "press the button behind the wall", "coffee-button-v3": "press the coffee machine button",
    "coffee-pull-v3": "pull the mug from the coffee machine", "coffee-push-v3": "push the mug into the coffee machine",
    "dial-turn-v3": "turn the dial", "disassemble-v3": "take the ring off the peg", "door-close-v3": "close the door",
    "door-lock-v3": "lock the door by turning the lock", "door-open-v3": "open the door",
    "door-unlock-v3": "unlock the door by turning the lock", "hand-insert-v3": "insert the hand into the hole",
    "drawer-close-v3": "close the drawer", "drawer-open-v3": "open the drawer", "faucet-open-v3":
    "turn the faucet on", "faucet-close-v3": "turn the faucet off", "hammer-v3": "hammer the nail into the wall",
    "handle-press-side-v3": "press the handle down sideways", "handle-press-v3": "press the handle down",
    "handle-pull-side-v3": "pull the handle up sideways", "handle-pull-v3": "pull the handle up",
    "lever-pull-v3": "pull the lever up", "pick-place-wall-v3": "pick up the puck and place it behind the wall",
    "pick-out-of-hole-v3": "pick the puck out of the hole",
    "pick-place-v3": "pick up the puck and place it at the goal",
    "plate-slide-v3": "slide the plate into the cabinet",
    "plate-slide-side-v3": "slide the plate into the cabinet sideways",
    "plate-slide-back-v3": "slide the plate out of the cabinet", "plate-slide-back-side-v3":
    "slide the plate out of the cabinet sideways", "peg-insert-side-v3": "insert the peg into the hole sideways",
    "peg-unplug-side-v3": "unplug the peg sideways", "soccer-v3": "kick the ball into the goal",
    "stick-push-v3": "push the bottle with the stick", "stick-pull-v3": "pull the bottle with the stick",
    "push-v3": "push the puck to the goal", "push-wall-v3": "push the puck past the wall to the goal",
    "push-back-v3": "pull the puck back to the goal", "reach-v3": "reach the goal position with the gripper",
    "reach-wall-v3": "reach the goal position behind the wall", "shelf-place-v3": "place the puck on the shelf",
    "sweep-into-v3": "sweep the puck into the hole", "sweep-v3": "sweep the puck off the table",
    "window-open-v3": "slide the window open", "window-close-v3": "slide the window closed",
}

MT50 = sorted(INSTRUCTIONS)
MT10 = ["reach-v3", "push-v3", "pick-place-v3", "door-open-v3", "drawer-open-v3", "drawer-close-v3",
        "button-press-topdown-v3", "peg-insert-side-v3", "window-open-v3", "window-close-v3"]
SUITES = {"MT10": MT10, "MT50": MT50}


def resolve_tasks(spec: str | list[str]) -> list[str]:
    """``"reach,push"``, ``"MT10"`` or a list; the ``-v3`` suffix is optional. Unknown names exit 2 listing all."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    tasks: list[str] = []
    for item in (s.strip() for s in items if s.strip()):
        if item.upper() in SUITES:
            tasks += SUITES[item.upper()]
            continue
        name = item if item.endswith("-v3") else f"{item}-v3"
        if name not in INSTRUCTIONS:
            raise VidpolicyError(f"--tasks: unknown Meta-World task {item!r}; valid: MT10, MT50, " + ", ".join(MT50))
        tasks.append(name)
    if not tasks:
        raise VidpolicyError("--tasks: no task given")
    return list(dict.fromkeys(tasks))
