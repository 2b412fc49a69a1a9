"""Settings, read once from the environment.

Every setting is declared exactly once, below, with its environment variable, its default and
the line of documentation that explains it (thumbor's `Config.define`, as a frozen dataclass).
The same names appear in `local.settings.sample.json` and in the Bicep app settings; a test
checks that the three agree.

Secrets are never settings values in files: in Azure a secret setting holds a Key Vault
reference (`@Microsoft.KeyVault(SecretUri=...)`), which the platform resolves; locally it comes
from the git-ignored `local.settings.json`.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.imaging.limits import Limits

__all__ = ["ConfigError", "Settings", "describe_settings", "load_settings", "setting"]

MB = 1024 * 1024


class ConfigError(ValueError):
    """A setting has a value that cannot be used; raised at start-up, never per request."""


def setting(
    env: str, default: Any, doc: str, *, secret: bool = False, group: str = "general"
) -> Any:
    """Declare one setting: its environment variable, default and documentation."""
    return field(
        default=default, metadata={"env": env, "doc": doc, "secret": secret, "group": group}
    )


@dataclass(frozen=True)
class Settings:
    # -- Limits on what users may send (SECURITY.md) -----------------------------------------
    max_upload_bytes: int = setting(
        "PIXELPIPE_MAX_UPLOAD_BYTES",
        50 * MB,
        "Largest image accepted in one HTTP upload, in bytes (the platform caps bodies at 100 MB; "
        "larger files go through POST /api/uploads).",
        group="limits",
    )
    max_blob_bytes: int = setting(
        "PIXELPIPE_MAX_BLOB_BYTES",
        200 * MB,
        "Largest image accepted through a blob drop or an upload URL, in bytes.",
        group="limits",
    )
    max_frame_pixels: int = setting(
        "PIXELPIPE_MAX_FRAME_PIXELS",
        40_000_000,
        "Largest width x height of one frame, checked from the header before decoding.",
        group="limits",
    )
    max_total_pixels: int = setting(
        "PIXELPIPE_MAX_TOTAL_PIXELS",
        100_000_000,
        "Largest width x height x frames of an animated image.",
        group="limits",
    )
    max_frames: int = setting(
        "PIXELPIPE_MAX_FRAMES", 100, "Most frames an animated image may have.", group="limits"
    )
    max_dimension: int = setting(
        "PIXELPIPE_MAX_DIMENSION",
        30_000,
        "Longest side, in pixels, of an input image or of any output.",
        group="limits",
    )
    max_operations: int = setting(
        "PIXELPIPE_MAX_OPERATIONS",
        20,
        "Most operations (outputs) one job may ask for.",
        group="limits",
    )
    max_chain_steps: int = setting(
        "PIXELPIPE_MAX_CHAIN_STEPS",
        10,
        "Most steps in one operation's chain (the operation plus its `then` steps).",
        group="limits",
    )
    input_formats: tuple[str, ...] = setting(
        "PIXELPIPE_INPUT_FORMATS",
        ("jpeg", "png", "webp", "gif", "avif"),
        "Comma-separated allow-list of accepted input formats (sniffed from the bytes).",
        group="limits",
    )

    # -- Processing ---------------------------------------------------------------------------
    imaging_threads: int = setting(
        "PIXELPIPE_IMAGING_THREADS",
        0,
        "Threads one operation may use for band-parallel filters; 0 means one per CPU core.",
        group="processing",
    )
    operation_timeout_seconds: float = setting(
        "PIXELPIPE_OPERATION_TIMEOUT_SECONDS",
        120.0,
        "Time budget of one operation; past it the operation fails with TIMEOUT.",
        group="processing",
    )
    default_preset: str = setting(
        "PIXELPIPE_DEFAULT_PRESET",
        "web",
        "Preset used when a job names no operations (blob drops without metadata).",
        group="processing",
    )

    def limits(self) -> Limits:
        """The imaging limits, as the pure imaging code takes them."""
        return Limits(
            max_bytes=max(self.max_upload_bytes, self.max_blob_bytes),
            max_frame_pixels=self.max_frame_pixels,
            max_total_pixels=self.max_total_pixels,
            max_frames=self.max_frames,
            max_dimension=self.max_dimension,
            formats=frozenset(self.input_formats),
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every setting from `environ` (default `os.environ`); unset ones keep defaults."""
        env = os.environ if environ is None else environ
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            name = f.metadata["env"]
            raw = env.get(name)
            if raw is None or raw == "":
                continue
            try:
                values[f.name] = _parse(hints[f.name], raw)
            except ValueError as exc:
                raise ConfigError(f"{name}: {exc}") from None
        settings = cls(**values)
        settings._check()
        return settings

    def _check(self) -> None:
        from shared.imaging.formats import FORMATS

        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
                raise ConfigError(f"{f.metadata['env']}: must not be negative")
        unknown = [name for name in self.input_formats if name not in FORMATS]
        if unknown:
            raise ConfigError(f"PIXELPIPE_INPUT_FORMATS: unknown format(s) {', '.join(unknown)}")


def _parse(kind: Any, raw: str) -> Any:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(kind) if a is not type(None)]
        return _parse(inner[0], raw)
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected true/false, got {raw!r}")
    if kind is int:
        return int(raw.replace("_", ""))
    if kind is float:
        return float(raw)
    if kind is str:
        return raw
    if origin is tuple:
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    raise ValueError(f"unsupported setting type {kind!r}")


def describe_settings() -> list[dict[str, Any]]:
    """Every setting with its variable, default and doc line (for docs and the agreement test)."""
    out = []
    for f in dataclasses.fields(Settings):
        default = f.default
        if isinstance(default, tuple):
            default = ",".join(default)
        out.append(
            {
                "env": f.metadata["env"],
                "field": f.name,
                "default": default,
                "doc": f.metadata["doc"],
                "secret": f.metadata["secret"],
                "group": f.metadata["group"],
            }
        )
    return out


_cached: Settings | None = None


def load_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    global _cached
    if _cached is None:
        _cached = Settings.from_env()
    return _cached
