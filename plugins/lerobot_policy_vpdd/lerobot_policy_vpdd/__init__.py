"""LeRobot imports every installed ``lerobot_policy_*`` distribution when its scripts start; this one registers
vidpolicy's policy type ``vpdd`` (the classes live in `vidpolicy.policies.lerobot_vpdd`)."""

import vidpolicy.policies.lerobot_vpdd  # noqa: F401  registers --policy.type=vpdd
