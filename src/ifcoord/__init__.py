"""ifcoord: coordinate parallel AI coding sessions through a git branch."""

__version__ = "0.1.0"
