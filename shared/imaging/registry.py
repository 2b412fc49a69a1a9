"""The operation registry: each operation declares its parameters once.

That one declaration drives spec validation (`Operation.parse`), the catalogue served by
`GET /api/operations` (`catalogue()`), the docs (`docs/operations.md` is generated from it and
a test keeps it current) and the CLI help.

An operation's `apply` takes one frame in a working mode (L, LA, RGB, RGBA) and returns a new
frame; it never modifies its input in place, because several chains may share one decoded
source, unless the pipeline says the frame is the step's alone (`OpContext.consume`): then it
may write its result into the input and return it, so a 12 MP step needs one full-size image
instead of two. Besides its parameters an operation may declare what the planner needs to make the
pipeline faster without changing what it computes:

* `scale`: the linear factor by which it resizes its input (< 1 shrinks), so the decoder can
  shrink on load (JPEG DCT scaling) when nothing before it cares about full resolution;
* `scale_invariant`: it commutes with uniform scaling (colour ops, flips, quarter turns), so
  the planner may look past it for a shrinking step;
* `luma_safe`: it commutes with conversion to grayscale, so a later `grayscale` lets the
  decoder produce luma directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from shared.errors import InvalidSpec, OperationTimeout
from shared.imaging.formats import FORMATS, avif_available
from shared.imaging.limits import Limits
from shared.imaging.params import Choice, Int, Param

__all__ = [
    "FORMAT_PARAM",
    "OUTPUT_KEYS",
    "QUALITY_PARAM",
    "REGISTRY",
    "OpContext",
    "Operation",
    "catalogue",
    "get_operation",
    "operation",
]


def writable_formats() -> tuple[str, ...]:
    return tuple(name for name in FORMATS if name != "avif" or avif_available())


# Parameters every step accepts besides its own: they choose the output encoding.
FORMAT_PARAM = Choice(
    "format", "Output format (default: the source's, or PNG for GIF).", choices=writable_formats()
)
QUALITY_PARAM = Int(
    "quality", "Output quality 1-100 (default: per format).", minimum=1, maximum=100
)
OUTPUT_PARAMS = (FORMAT_PARAM, QUALITY_PARAM)
OUTPUT_KEYS = ("format", "quality", "max_bytes")

Params = Mapping[str, Any]
Size = tuple[int, int]


@dataclass
class OpContext:
    """What an operation may use besides its input: limits, threads and the time budget."""

    limits: Limits = field(default_factory=Limits)
    threads: int = 1
    deadline: float | None = None  # time.monotonic() value
    # The input frame belongs to this step alone (nothing reads it afterwards): the operation
    # may overwrite it with its result. Set per step by the pipeline; off by default.
    consume: bool = False

    def check_deadline(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise OperationTimeout()


@dataclass(frozen=True)
class Operation:
    name: str
    description: str
    params: tuple[Param, ...]
    apply: Callable[[Image.Image, Params, OpContext], Image.Image]
    group: str
    check: Callable[[Params, str], None] | None = None
    scale: Callable[[Params, Size], float | None] | None = None
    scale_invariant: bool = False
    luma_safe: bool = False
    out_size: Callable[[Params, Size], Size] | None = None

    def all_params(self) -> tuple[Param, ...]:
        """Its own parameters plus the output ones it does not declare itself."""
        own = {p.name for p in self.params}
        return self.params + tuple(p for p in OUTPUT_PARAMS if p.name not in own)

    def parse(
        self,
        raw: Mapping[str, Any],
        path: str,
        *,
        extra_keys: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        """Validate one step's parameters; `path` is where the step sits in the spec."""
        params = self.all_params()
        known = {p.name for p in params}
        allowed = known | {"op", *extra_keys}
        for key in raw:
            if key not in allowed:
                raise InvalidSpec(
                    f"unknown parameter for {self.name!r}; it takes "
                    f"{', '.join(sorted(p.name for p in self.params)) or 'no parameters'}",
                    path=f"{path}.{key}",
                )
        values: dict[str, Any] = {}
        for param in params:
            if param.name in raw and raw[param.name] is not None:
                values[param.name] = param.parse(raw[param.name], f"{path}.{param.name}")
            elif param.required:
                raise InvalidSpec("is required", path=f"{path}.{param.name}")
            elif param.default is not None:
                # Defaults are written as a client would write them; parse them the same way.
                values[param.name] = param.parse(param.default, f"{path}.{param.name}")
        if self.check is not None:
            self.check(values, path)
        return values

    def size_after(self, params: Params, size: Size) -> Size:
        return self.out_size(params, size) if self.out_size else size

    def describe(self) -> dict[str, Any]:
        required = [p.name for p in self.params if p.required]
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {p.name: p.schema() for p in self.params},
            "additionalProperties": False,
        }
        if required:
            schema["required"] = required
        return {
            "op": self.name,
            "group": self.group,
            "description": self.description,
            "params": schema,
        }


REGISTRY: dict[str, Operation] = {}


def operation(
    name: str,
    description: str,
    *params: Param,
    group: str,
    **traits: Any,
) -> Callable[
    [Callable[[Image.Image, Params, OpContext], Image.Image]],
    Callable[[Image.Image, Params, OpContext], Image.Image],
]:
    """Register the decorated function as operation `name`."""

    def register(
        fn: Callable[[Image.Image, Params, OpContext], Image.Image],
    ) -> Callable[[Image.Image, Params, OpContext], Image.Image]:
        if name in REGISTRY:
            raise ValueError(f"operation {name!r} registered twice")
        REGISTRY[name] = Operation(name, description, tuple(params), fn, group, **traits)
        return fn

    return register


def get_operation(name: Any, path: str) -> Operation:
    if not isinstance(name, str) or not name:
        raise InvalidSpec('each operation needs an "op" naming it', path=f"{path}.op")
    op = REGISTRY.get(name.strip().lower())
    if op is None:
        raise InvalidSpec(
            f"unknown operation {name[:40]!r}; see GET /api/operations", path=f"{path}.op"
        )
    return op


GROUPS = ("geometry", "colour", "filter", "overlay", "output")


def catalogue() -> list[dict[str, Any]]:
    """Every operation with its parameter schema, grouped, in registration order within a group."""
    ordered = sorted(REGISTRY.values(), key=lambda op: GROUPS.index(op.group))
    return [op.describe() for op in ordered]
