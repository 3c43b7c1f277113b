"""Simulated robots: headless Meta-World v3 tasks, scripted-expert demonstrations, and the rollout harness."""
