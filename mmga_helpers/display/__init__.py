"""Layer 7, what a reader sees: figures, 2-D views of latent spaces and the widget explorer."""
