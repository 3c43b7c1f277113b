"""Stage 1: a 3D VQ-VAE video tokenizer (VideoGPT style) shared by human and robot video."""

__all__ = ["VideoTokenizer"]


def __getattr__(name: str):
    if name == "VideoTokenizer":  # on first use: the model imports torch and diffusers, the stage's config does not
        from vidpolicy.tokenizer.model import VideoTokenizer

        return VideoTokenizer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
