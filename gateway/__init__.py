"""A data-residency-aware disclosure gateway."""

__version__ = "0.1.0"
