"""grok-tui: a research instrument for the grokking effect."""

__version__ = "0.1.0"
