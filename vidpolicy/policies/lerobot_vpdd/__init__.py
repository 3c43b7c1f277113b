"""vidpolicy's VPDD policy in LeRobot's classes: ``--policy.type=vpdd`` in ``lerobot-train`` and ``lerobot-eval``.

Importing this package registers the config (`VPDDConfig` as ``vpdd``) and the ``vpdd_observation`` processor step;
LeRobot finds `VPDDPolicy` (modeling_vpdd) and ``make_vpdd_pre_post_processors`` (processor_vpdd) by naming
convention. The ``lerobot_policy_vpdd`` distribution (plugins/) imports it when LeRobot's scripts start.
"""

from vidpolicy.policies.lerobot_vpdd.configuration_vpdd import VPDDConfig
from vidpolicy.policies.lerobot_vpdd.processor_vpdd import VPDDObservationStep

__all__ = ["VPDDConfig", "VPDDObservationStep"]
