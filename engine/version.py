"""The package version, in one place that needs nothing but the standard library."""

from importlib import metadata

try:
    __version__ = metadata.version("pulumi-sconify")
except metadata.PackageNotFoundError:  # running from a copy of the sources (e.g. inside an image)
    __version__ = "0+unknown"
