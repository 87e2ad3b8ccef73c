"""Layer 5, the run's stages: the run and its data, the simulated world of co-occurring pairs, cached
clusterings, the autoencoder stages, linking the clusters through the brain, and the generator's export."""
