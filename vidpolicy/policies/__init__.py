"""Policies shaped like LeRobot's own (``policies/<name>/``: configuration, modeling, processor)."""
