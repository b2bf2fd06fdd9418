"""ViralSplit: turn one video into platform-ready clips, with live progress for everyone watching."""

__version__ = "0.1.0"
