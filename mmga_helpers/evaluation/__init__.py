"""Layer 6, the figures of merit: judges, reconstruction, clusters, robustness, the speaker hold-out,
generated samples, baselines, the driver that computes them all, and their tables."""
