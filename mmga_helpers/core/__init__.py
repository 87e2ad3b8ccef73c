"""Layer 1, what every other layer stands on: configuration, atomic I/O and stamps, batch inference,
co-occurrence pairs, metrics and the machine's description. Imports nothing else of the package."""
