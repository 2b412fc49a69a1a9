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
        "Threads one operation may use for band-parallel filters; 0 shares the CPU cores "
        "among the operations the process runs at once (all of them for a lone one).",
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

    # -- Storage (one account: the Functions host's own, AzureWebJobsStorage) --------------
    storage_connection: str = setting(
        "AzureWebJobsStorage",
        "",
        "Storage connection string (local: Azurite's). Leave empty in Azure and use the "
        "identity-based AzureWebJobsStorage__* settings below.",
        group="storage",
    )
    storage_account_name: str = setting(
        "AzureWebJobsStorage__accountName",
        "",
        "Azure: storage account name for identity-based connections.",
        group="storage",
    )
    storage_blob_uri: str = setting(
        "AzureWebJobsStorage__blobServiceUri",
        "",
        "Azure: blob endpoint (default https://<account>.blob.core.windows.net).",
        group="storage",
    )
    storage_queue_uri: str = setting(
        "AzureWebJobsStorage__queueServiceUri",
        "",
        "Azure: queue endpoint (default https://<account>.queue.core.windows.net).",
        group="storage",
    )
    storage_table_uri: str = setting(
        "AzureWebJobsStorage__tableServiceUri",
        "",
        "Azure: table endpoint (default https://<account>.table.core.windows.net).",
        group="storage",
    )
    storage_client_id: str = setting(
        "AzureWebJobsStorage__clientId",
        "",
        "Azure: client id of the user-assigned managed identity used for storage.",
        group="storage",
    )

    # -- Jobs ----------------------------------------------------------------------------------
    job_deadline_seconds: int = setting(
        "PIXELPIPE_JOB_DEADLINE_SECONDS",
        600,
        "A job's deadline: operations not finished by then fail with TIMEOUT.",
        group="jobs",
    )
    sas_ttl_seconds: int = setting(
        "PIXELPIPE_SAS_TTL_SECONDS",
        900,
        "Lifetime of the read-only links to outputs.",
        group="jobs",
    )
    sas_clock_skew_seconds: int = setting(
        "PIXELPIPE_SAS_CLOCK_SKEW_SECONDS",
        300,
        "How far SAS start times are backdated, to tolerate clients' clock skew.",
        group="jobs",
    )
    upload_url_ttl_seconds: int = setting(
        "PIXELPIPE_UPLOAD_URL_TTL_SECONDS",
        900,
        "Lifetime of the write-only upload URLs that POST /api/uploads hands out.",
        group="jobs",
    )
    idempotency_hours: int = setting(
        "PIXELPIPE_IDEMPOTENCY_HOURS",
        24,
        "How long an Idempotency-Key keeps returning the job it first created.",
        group="jobs",
    )
    page_size: int = setting(
        "PIXELPIPE_PAGE_SIZE", 50, "Jobs per page in GET /api/jobs.", group="jobs"
    )
    jobs_per_minute: int = setting(
        "PIXELPIPE_JOBS_PER_MINUTE",
        120,
        "Jobs one principal may start per minute (HTTP and upload URLs); 0 means no limit. "
        "Over it: 429 RATE_LIMITED with Retry-After.",
        group="jobs",
    )

    # -- Authentication (Entra ID access tokens; locally the dev host is the issuer) --------
    auth_jwks_url: str = setting(
        "PIXELPIPE_AUTH_JWKS_URL",
        "",
        "JWKS URL of the token issuer (Entra ID: "
        "https://login.microsoftonline.com/<tenant>/discovery/v2.0/keys).",
        group="auth",
    )
    auth_issuers: tuple[str, ...] = setting(
        "PIXELPIPE_AUTH_ISSUERS",
        (),
        "Comma-separated accepted issuers (Entra ID: https://login.microsoftonline.com/"
        "<tenant>/v2.0, and https://sts.windows.net/<tenant>/ for v1 tokens).",
        group="auth",
    )
    auth_audiences: tuple[str, ...] = setting(
        "PIXELPIPE_AUTH_AUDIENCES",
        (),
        "Comma-separated accepted audiences (the API's app id URI and/or client id).",
        group="auth",
    )
    auth_tenants: tuple[str, ...] = setting(
        "PIXELPIPE_AUTH_TENANTS",
        (),
        "Comma-separated tenant ids whose tokens are accepted (empty: any tenant the issuer "
        "list allows).",
        group="auth",
    )
    auth_permission: str = setting(
        "PIXELPIPE_AUTH_PERMISSION",
        "Images.Process",
        "Delegated scope (scp) or app role (roles) a token must carry.",
        group="auth",
    )
    auth_leeway_seconds: int = setting(
        "PIXELPIPE_AUTH_LEEWAY_SECONDS",
        60,
        "Clock skew tolerated on a token's exp and nbf.",
        group="auth",
    )

    # -- Secrets and encryption keys --------------------------------------------------------
    secrets_provider: str = setting(
        "PIXELPIPE_SECRETS_PROVIDER",
        "local",
        "Where rotating secrets (the blob key-encryption key) live: `keyvault` (Azure Key "
        "Vault, through the managed identity) or `local` (settings plus a local store).",
        group="secrets",
    )
    key_vault_url: str = setting(
        "PIXELPIPE_KEY_VAULT_URL",
        "",
        "The vault's URL, https://<name>.vault.azure.net (needed with `keyvault`).",
        group="secrets",
    )
    local_secrets_store: str = setting(
        "PIXELPIPE_LOCAL_SECRETS_STORE",
        ".data/secrets/local-secrets.json",
        "Local only: the git-ignored file that keeps locally rotated secret versions.",
        group="secrets",
    )
    secrets_cache_seconds: int = setting(
        "PIXELPIPE_SECRETS_CACHE_SECONDS",
        300,
        "How long a secret read from Key Vault is reused before it is read again.",
        group="secrets",
    )
    blob_kek_name: str = setting(
        "PIXELPIPE_BLOB_KEK_NAME",
        "blob-kek",
        "Name of the secret that holds the key-encryption key for private blobs.",
        group="secrets",
    )
    blob_kek_local: str = setting(
        "PIXELPIPE_SECRET_BLOB_KEK",
        "",
        "Local only, optional: a base64 32-byte starting key-encryption key (rotate rather "
        "than change it once data is encrypted under it).",
        secret=True,
        group="secrets",
    )
    encrypt_outputs: bool = setting(
        "PIXELPIPE_ENCRYPT_OUTPUTS",
        False,
        "Keep outputs client-side encrypted too and serve them decrypted through the "
        "authenticated API instead of SAS links (a SAS would serve ciphertext).",
        group="secrets",
    )

    # -- Webhooks ------------------------------------------------------------------------------
    webhook_allow_private: bool = setting(
        "PIXELPIPE_WEBHOOK_ALLOW_PRIVATE",
        False,
        "Allow webhook URLs on loopback/private addresses and plain http (local testing "
        "only; never in Azure).",
        group="webhooks",
    )
    webhook_secret_name: str = setting(
        "PIXELPIPE_WEBHOOK_SECRET_NAME",
        "webhook-signing-key",
        "Name of the secret (read through the secret provider) that keys the "
        "X-Pixelpipe-Signature HMAC.",
        group="webhooks",
    )
    webhook_secret_local: str = setting(
        "PIXELPIPE_SECRET_WEBHOOK_SIGNING_KEY",
        "",
        "Local only: the webhook signing key when secrets come from settings (the `local` "
        "provider); with `keyvault` the key lives in the vault.",
        secret=True,
        group="webhooks",
    )
    webhook_timeout_seconds: float = setting(
        "PIXELPIPE_WEBHOOK_TIMEOUT_SECONDS",
        10.0,
        "Timeout of one webhook delivery attempt.",
        group="webhooks",
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


def sample_values() -> dict[str, str]:
    """The `Values` of local.settings.sample.json: every setting at its default (secrets
    empty), plus the host's worker runtime."""
    values = {
        "FUNCTIONS_WORKER_RUNTIME": "python",
        # The platform's own body cap: the upload cap plus room for multipart framing.
        "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": str(Settings.max_upload_bytes + MB),
    }
    for entry in describe_settings():
        default = entry["default"]
        text = str(default).lower() if isinstance(default, bool) else str(default)
        values[entry["env"]] = "" if entry["secret"] else text
    values["AzureWebJobsStorage"] = "UseDevelopmentStorage=true"
    return values


_cached: Settings | None = None


def load_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    global _cached
    if _cached is None:
        _cached = Settings.from_env()
    return _cached
