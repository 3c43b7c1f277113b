"""``lerobot-eval`` with Meta-World episodes cut to N steps (LeRobot fixes them at 500), so a test stays short:
python tests/lerobot_eval_short.py N --policy.path=... (the other arguments are lerobot-eval's)."""

import sys

import lerobot.envs.metaworld as metaworld
from lerobot.scripts.lerobot_eval import main

steps = int(sys.argv.pop(1))
_init = metaworld.MetaworldEnv.__init__


def _short(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    self._max_episode_steps = steps


metaworld.MetaworldEnv.__init__ = _short
main()
