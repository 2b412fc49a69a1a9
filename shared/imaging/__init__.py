"""pixelpipe's imaging core: pure Python + pillow-simd, no Azure types.

    from shared.imaging import Chain, Step, run, parse_step
    result = run(jpeg_bytes, Chain.of(Step("resize", {"width": 800})))

Public surface (checked by a test): the names in `__all__`.
"""

import os as _os

from PIL import Image as _Image

from shared.imaging import ops as _ops  # noqa: F401  (registers the operations)
from shared.imaging.decode import DecodeHints, Picture, Probe, decode, open_image, probe
from shared.imaging.encode import Encoded, encode
from shared.imaging.formats import FORMATS, ImageFormat, avif_available, sniff
from shared.imaging.limits import Limits
from shared.imaging.pipeline import Chain, Step, plan, run, run_many
from shared.imaging.presets import PRESETS
from shared.imaging.registry import REGISTRY, OpContext, Operation, catalogue

__all__ = [
    "FORMATS",
    "PRESETS",
    "REGISTRY",
    "Chain",
    "DecodeHints",
    "Encoded",
    "ImageFormat",
    "Limits",
    "OpContext",
    "Operation",
    "Picture",
    "Probe",
    "Step",
    "avif_available",
    "catalogue",
    "decode",
    "encode",
    "open_image",
    "plan",
    "probe",
    "run",
    "run_many",
    "sniff",
]

# Keep freed image blocks for reuse instead of returning them to the OS: every 12 MP run
# otherwise first-touches ~130 MB of fresh pages (33 000 page faults), 15-30% of its CPU on
# these VMs. Up to 12 blocks of 16 MB stay resident per process. PILLOW_BLOCKS_MAX overrides.
if "PILLOW_BLOCKS_MAX" not in _os.environ:
    _Image.core.set_blocks_max(12)  # type: ignore[attr-defined]  # Pillow's C core
