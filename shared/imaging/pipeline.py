"""The pipeline: decode (prologue) -> the chain's steps -> encode (epilogue).

    source bytes
      │ decode.open_image   sniff, allow-list, header limits            (no pixels yet)
      │ plan                how little of the source the chains need
      │ decode.decode       full decode, shrink-on-load / luma-only when allowed, normalise
      │ step, step, ...     the chain (a deadline check before each step and frame)
      │ encode.encode       re-encode, metadata stripped, per-format defaults
      ▼ Encoded

The planner never changes what a chain asks for; it only avoids decoding pixels nobody uses:

* shrink-on-load: if the first size-changing step shrinks the image (resize, thumbnail)
  and every step before it commutes with scaling, JPEGs are decoded with DCT scaling to
  no less than twice the size that step produces (the gap Pillow's `thumbnail` and libvips
  use, so the final Lanczos pass sees enough pixels);
* luma-only: if the chain turns the image grayscale and nothing before that needs colour,
  JPEGs are decoded straight to luma (no colour conversion, no chroma upsampling).

`run_many` runs several chains on one source: one decode (at the largest size any chain
needs), then the chains side by side on a thread pool.

Memory: `run` owns its decoded source, so every step is told it may overwrite its input
(`OpContext.consume`) and the per-pixel ops, filters and flips write their results back into
it: a 12 MP step then holds one full-size image, not two. In `run_many` the chains share
the source, so a step may only consume frames its own chain made. When a step did produce a
new image as large as the source (rotate), the source's freed blocks are handed back to the
system before encoding instead of staying in Pillow's block cache.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from PIL import Image

from shared.errors import PixelpipeError
from shared.imaging.decode import DecodeHints, Picture, Probe, load, open_image
from shared.imaging.encode import Encoded, encode
from shared.imaging.formats import FORMATS, output_format_for
from shared.imaging.limits import Limits
from shared.imaging.parallel import chain_pool
from shared.imaging.registry import OUTPUT_KEYS, REGISTRY, OpContext

__all__ = ["Chain", "Step", "plan", "run", "run_many"]

# Decode at least this many times larger than the first shrinking step's output.
SHRINK_GAP = 2.0


@dataclass(frozen=True)
class Step:
    op: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, **_jsonable(self.params)}


@dataclass(frozen=True)
class Chain:
    """The steps that make one output, and how to encode it."""

    steps: tuple[Step, ...]
    format: str | None = None
    quality: int | None = None
    max_bytes: int | None = None

    @classmethod
    def of(cls, *steps: Step) -> Chain:
        """A chain whose output options come from its steps (the last one given wins)."""
        options: dict[str, Any] = {}
        for step in steps:
            options.update({k: step.params[k] for k in OUTPUT_KEYS if k in step.params})
        return cls(tuple(steps), **options)

    def output_format(self, source_format: str) -> str:
        return self.format or output_format_for(source_format)

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": [s.to_dict() for s in self.steps],
            "format": self.format,
            "quality": self.quality,
            "max_bytes": self.max_bytes,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Chain:
        """Rebuild a chain that was validated before it was stored (re-validated here)."""
        steps = []
        for index, raw in enumerate(data["steps"]):
            op = REGISTRY[raw["op"]]
            steps.append(Step(op.name, op.parse(raw, f"steps[{index}]")))
        return cls(tuple(steps), data.get("format"), data.get("quality"), data.get("max_bytes"))


def _jsonable(params: Mapping[str, Any]) -> dict[str, Any]:
    # Parsed colours are RGBA tuples: back to the CSS form they were parsed from.
    return {
        key: "#{:02x}{:02x}{:02x}{:02x}".format(*value) if isinstance(value, tuple) else value
        for key, value in params.items()
    }


def _chain_needs(probe: Probe, chain: Chain) -> tuple[float, bool]:
    """How far this chain lets the decoder shrink (>= 1), and whether luma alone will do."""
    size = probe.oriented_size
    reduction = 1.0
    for step in chain.steps:
        op = REGISTRY[step.op]
        if op.scale is not None:
            scale = op.scale(step.params, size)
            if scale is not None and scale > 0:
                reduction = max(1.0, 1.0 / (scale * SHRINK_GAP))
            break
        if not op.scale_invariant:
            break
        size = op.size_after(step.params, size)
    luma = False
    for step in chain.steps:
        op = REGISTRY[step.op]
        if op.name == "grayscale":
            luma = True
            break
        if not op.luma_safe:
            break
    return reduction, luma


def plan(probe: Probe, chains: Sequence[Chain]) -> DecodeHints:
    """The least decoding that serves every chain (see the module docstring)."""
    if not chains:
        return DecodeHints()
    if probe.format != "jpeg":
        return DecodeHints(first_frame_only=all(_first_frame_only(probe, c) for c in chains))
    needs = [_chain_needs(probe, chain) for chain in chains]
    reduction = min(r for r, _ in needs)
    luma = all(lumas for _, lumas in needs) and probe.mode == "RGB"
    min_size = None
    if reduction >= 2:
        min_size = (math.ceil(probe.width / reduction), math.ceil(probe.height / reduction))
    return DecodeHints(min_size=min_size, grayscale=luma)


def _first_frame_only(probe: Probe, chain: Chain) -> bool:
    return probe.frames > 1 and not FORMATS[chain.output_format(probe.format)].animation


def apply(picture: Picture, chain: Chain, ctx: OpContext, *, owned: bool = False) -> Picture:
    """Run the chain's steps on every frame.

    `owned`: nothing else reads `picture`'s frames, so every step may overwrite its input.
    Otherwise a step may only overwrite frames an earlier step of this chain made (never one
    of `picture`'s own frames, which other chains or the caller may still read).
    """
    shared = () if owned else tuple(picture.frames)
    mine, theirs = replace(ctx, consume=True), replace(ctx, consume=False)
    for step in chain.steps:
        op = REGISTRY[step.op]
        frames = []
        for frame in picture.frames:
            ctx.check_deadline()
            step_ctx = theirs if any(frame is s for s in shared) else mine
            frames.append(op.apply(frame, step.params, step_ctx))
        picture = picture.with_frames(frames)
    return picture


def _context(limits: Limits, threads: int, timeout: float | None) -> OpContext:
    deadline = time.monotonic() + timeout if timeout else None
    return OpContext(limits=limits, threads=max(1, threads), deadline=deadline)


def _finish(picture: Picture, chain: Chain, ctx: OpContext) -> Encoded:
    out = apply(picture, chain, ctx)
    ctx.check_deadline()
    return encode(
        out,
        chain.output_format(picture.source_format),
        chain.quality,
        chain.max_bytes,
        threads=ctx.threads,
    )


def run(
    data: bytes,
    chain: Chain,
    *,
    limits: Limits | None = None,
    threads: int = 1,
    timeout: float | None = None,
) -> Encoded:
    """Decode `data`, run `chain` on it and encode the result."""
    limits = limits or Limits()
    ctx = _context(limits, threads, timeout)
    picture, _ = decode_for(data, [chain], limits)
    source_format = picture.source_format
    out = apply(picture, chain, ctx, owned=True)
    freed = _bytes(f for f in picture.frames if not any(f is o for o in out.frames))
    del picture  # nothing else holds the decoded source: free it before encoding
    _release_freed(freed, _bytes(out.frames))
    ctx.check_deadline()
    return encode(
        out, chain.output_format(source_format), chain.quality, chain.max_bytes, threads=ctx.threads
    )


# A freed source at least this large is worth handing back to the system before encoding
# when the output is large too (see `_release_freed`).
RELEASE_BYTES = 16 << 20


def _bytes(frames: Iterable[Image.Image]) -> int:
    return sum(f.width * f.height * (1 if f.mode == "L" else 4) for f in frames)


def _release_freed(freed: int, output: int) -> None:
    """Return the freed source's memory to the system if the output is about as large.

    Pillow keeps freed image blocks for reuse (see `shared.imaging`): cheap while the output
    is small (resize, thumbnail, crop), but when a step made a new image at least half the
    source's size (rotate, quarter turns) those blocks would sit beside the output and the
    encoder's buffers (a progressive JPEG holds every coefficient) for the whole encode.
    """
    if freed >= RELEASE_BYTES and output * 2 >= freed:
        Image.core.clear_cache()  # type: ignore[attr-defined]  # Pillow's C core


def decode_for(data: bytes, chains: Sequence[Chain], limits: Limits) -> tuple[Picture, Probe]:
    """Decode `data` as little as `chains` allow."""
    im, probe = open_image(data, limits)
    return load(im, probe, plan(probe, chains)), probe


def run_many(
    data: bytes,
    chains: Sequence[Chain],
    *,
    limits: Limits | None = None,
    threads: int = 1,
    timeout: float | None = None,
) -> list[Encoded | PixelpipeError]:
    """Several chains on one source: one decode, then the chains side by side.

    Each entry of the result is the chain's output or the typed error that chain ended with;
    one failing chain does not affect the others. A source that cannot be decoded at all
    raises.
    """
    limits = limits or Limits()
    picture, _ = decode_for(data, chains, limits)
    per_chain = max(1, threads // max(1, len(chains)))

    def one(chain: Chain) -> Encoded | PixelpipeError:
        try:
            return _finish(picture, chain, _context(limits, per_chain, timeout))
        except PixelpipeError as exc:
            return exc

    if threads <= 1 or len(chains) == 1:
        return [one(chain) for chain in chains]
    return list(chain_pool().map(one, chains))
