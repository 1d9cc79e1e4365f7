"""Image generation backends.

Importing this package is cheap and torch-free: it exposes the spec, its validation and the
worker options, which the web process uses. The GPU side lives in
``generation.backends.diffusers_backend`` (``generate_batch``) and
``generation.backends.pipelines`` and is imported only by generate workers and tests;
``backend_for`` picks it, or the procedural drawing backend for ``procedural:`` sources.
"""

from collections.abc import Callable

from .images import GeneratedImage, encode_png, sha256_hex
from .options import BackendOptions
from .spec import GeneratorSpec, SpecError, procedural_faithfulness, validate_spec


def backend_for(spec: GeneratorSpec) -> Callable[..., list[GeneratedImage]]:
    """The ``generate_batch`` that makes this spec's images, imported on first use (so only
    a worker that runs diffusers imports torch)."""
    if procedural_faithfulness(spec.source) is not None:
        from .procedural import generate_batch
    else:
        from .diffusers_backend import generate_batch
    return generate_batch


__all__ = [
    "BackendOptions",
    "GeneratedImage",
    "GeneratorSpec",
    "SpecError",
    "backend_for",
    "encode_png",
    "sha256_hex",
    "validate_spec",
]
