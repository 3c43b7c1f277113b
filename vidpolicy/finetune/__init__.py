"""Stage 3: an action model conditioned on the pre-trained denoiser's imagined future, and the policy built on it."""
