"""Image generation backends.

Importing this package is cheap and torch-free: it exposes the spec, its validation and the
worker options, which the web process uses. The GPU side lives in
``generation.backends.diffusers_backend`` (``generate_batch``) and
``generation.backends.pipelines`` and is imported only by generate workers and tests.
"""

from .images import GeneratedImage, encode_png, sha256_hex
from .options import BackendOptions
from .spec import GeneratorSpec, SpecError, validate_spec

__all__ = [
    "BackendOptions",
    "GeneratedImage",
    "GeneratorSpec",
    "SpecError",
    "encode_png",
    "sha256_hex",
    "validate_spec",
]
