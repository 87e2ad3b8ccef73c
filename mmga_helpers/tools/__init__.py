"""Layer 9, the tools around the book: the notebook runner, the book builder, the ``mmga`` command,
benchmarks and the set-up warm-up."""
