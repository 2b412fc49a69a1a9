"""The installed imaging stack is the one pixelpipe is built and benchmarked for."""

from __future__ import annotations

from importlib import metadata

import PIL
from PIL import features

from shared.imaging import avif_available


def test_pil_is_pillow_simd():
    # pillow-simd versions end in .postN; a dependency that pulls in `pillow` replaces it.
    assert PIL.__version__.split("+")[0].rsplit(".", 1)[-1].startswith("post"), PIL.__version__
    assert metadata.version("pillow-simd") == PIL.__version__.split("+")[0]


def test_pillow_simd_is_linked_against_zlib_ng():
    # scripts/install-python.sh builds it so: PNG encoding ~2x faster than system zlib.
    assert "zlib-ng" in (features.version("zlib") or "")


def test_codecs_and_features_present():
    for name in ("jpg", "zlib", "webp", "freetype2", "littlecms2"):
        assert features.check(name), name
    assert features.check_feature("libjpeg_turbo")
    assert features.check_feature("libimagequant")
    assert avif_available()
