"""borderwatch: multi-sensor fusion and border-crossing detection for green and blue borders."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("borderwatch")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
