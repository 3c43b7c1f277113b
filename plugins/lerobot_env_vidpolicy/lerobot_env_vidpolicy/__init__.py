"""LeRobot imports every installed ``lerobot_env_*`` distribution when its scripts start; this one registers
vidpolicy's view of Meta-World as the environment type ``vidpolicy`` (the classes live in
`vidpolicy.envs.lerobot_env`)."""

import vidpolicy.envs.lerobot_env  # noqa: F401  registers --env.type=vidpolicy
