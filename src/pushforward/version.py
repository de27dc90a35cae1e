"""The package version, in a module nothing upstream imports, so every module may read it."""

__version__ = "0.1.0"
