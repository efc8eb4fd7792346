"""The one exception of the image build (its own module so every stage can raise it)."""

from __future__ import annotations


class ImageBuildError(RuntimeError):
    """The kernel image cannot be built here; the message says what to install or run."""
