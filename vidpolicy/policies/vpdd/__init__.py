"""The VPDD policy: imagined video tokens and action tokens denoised together (see modeling_vpdd.py)."""

from vidpolicy.policies.vpdd.configuration_vpdd import VPDDConfig
from vidpolicy.policies.vpdd.modeling_vpdd import VPDDPolicy
from vidpolicy.policies.vpdd.processor_vpdd import VPDDProcessor

__all__ = ["VPDDConfig", "VPDDPolicy", "VPDDProcessor"]
