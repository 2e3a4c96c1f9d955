"""ISR: records audio streams and soundcards into clock-aligned files."""

__version__ = "0.1.0"
