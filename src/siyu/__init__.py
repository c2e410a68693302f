"""siyu (私域): an open-source, self-hostable SCRM for WeCom."""

__version__ = "0.1.0"
