"""Layer 3, what learns: the autoencoders and their training, the clusterers and the brain."""
