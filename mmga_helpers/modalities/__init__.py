"""Layer 2, the two modalities: MNIST and FSDD loaders, the audio front end and model-ready features."""
