"""The package version, in a module nothing upstream imports, so every module may read it.

Imports nothing of this package: any module may import it.
"""

__version__ = "0.1.0"
