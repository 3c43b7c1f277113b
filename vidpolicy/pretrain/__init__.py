"""Stage 2: mask-and-replace discrete diffusion over video tokens (VQ-Diffusion), pre-trained on actionless video."""
