"""MMGA helpers: the logic behind the notebook book (data, audio, models, clustering, brain, generation)."""

__version__ = "0.1.0"
