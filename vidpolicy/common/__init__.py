"""Pieces every stage shares: configs, run directories, atomic files, the training loop, plots, text."""
