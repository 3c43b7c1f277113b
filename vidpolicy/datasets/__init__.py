"""Data in: video corpora (decord, torchcodec fallback), token shards, and LeRobot robot datasets."""
