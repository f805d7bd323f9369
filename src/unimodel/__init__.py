"""unimodel: one protocol for every model."""

__version__ = "0.1.0"
