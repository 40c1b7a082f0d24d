"""symlinkd: keeps the symlink farm of a debrid media stack healthy."""

__version__ = "0.1.0"
