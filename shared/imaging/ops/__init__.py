"""The operations. Importing this package registers every one of them, in catalogue order."""

from shared.imaging.ops import colour, filters, geometry, output, overlay

__all__ = ["colour", "filters", "geometry", "output", "overlay"]
