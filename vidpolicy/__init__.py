"""vidpolicy: learn robot policies from actionless video (VPDD as production software).

Stages meet through files on disk: videos -> token shards -> checkpoints -> datasets -> rollout reports.
"""

__version__ = "0.2.0"
