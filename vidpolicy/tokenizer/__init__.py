"""Stage 1: a 3D VQ-VAE video tokenizer (VideoGPT style) shared by human and robot video."""

from vidpolicy.tokenizer.model import VideoTokenizer

__all__ = ["VideoTokenizer"]
