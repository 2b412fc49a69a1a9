"""Fuzzing the prologue (sniff, limits, decode) and a pipeline run with mutated real images:
whatever the bytes, only typed `PixelpipeError`s may escape.

Bounded for `make test` (derandomized, so CI is reproducible); `FUZZ_EXAMPLES=5000` runs more.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.errors import PixelpipeError
from shared.imaging import Chain, Limits, Step, probe, run
from tests.fixtures import images

SEEDS = {
    "jpeg": images.jpeg(96, 64),
    "png": images.png(64, 48),
    "png-rgba": images.png_rgba(48, 32),
    "png-palette": images.png_palette_transparent(40, 30),
    "webp": images.webp(64, 48),
    "gif": images.animated_gif(frames=3, width=40, height=30),
    "avif": images.avif(48, 32),
}
LIMITS = Limits(
    max_frame_pixels=2_000_000,
    max_total_pixels=4_000_000,
    max_frames=20,
    max_dimension=4000,
    max_bytes=2_000_000,
)
CHAIN = Chain.of(Step("flip", {"direction": "horizontal"}))
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "250"))


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "byte", "truncate", "insert", "splice"]))
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "byte":
            data[at] = draw(st.integers(0, 255))
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        else:  # splice: repeat a chunk of the file (duplicated chunks, bogus frames)
            end = min(len(data), at + draw(st.integers(1, 512)))
            data[at:at] = data[at:end] * draw(st.integers(1, 4))
    return bytes(data)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mutated())
def test_only_typed_errors_escape(data: bytes) -> None:
    try:
        probe(data, LIMITS)
        run(data, CHAIN, limits=LIMITS)
    except PixelpipeError as exc:
        assert exc.status in (400, 413, 415, 422), exc
