"""patchline: PatchCore defect detection for production-line cameras."""

__version__ = "0.1.0"
