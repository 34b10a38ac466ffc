"""Build, validate and push the public prediction dataset (shards -> Hub layout -> Hub)."""

from .build import BuildResult, build_release
from .push import push_release
from .shards import ShardError
from .validate import validate_release

__all__ = ["BuildResult", "ShardError", "build_release", "push_release", "validate_release"]
