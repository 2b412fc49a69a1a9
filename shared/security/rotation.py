"""Key rotation for private blobs: a new key version, then every envelope re-wrapped.

A client-side-encrypted blob holds its data encrypted under a content key, and that content
key wrapped by a key-encryption key (KEK) in its `encryptiondata` metadata, together with
the KEK's versioned id. Rotation never touches the data:

1. `rotate`: store a new KEK version; then for every private blob still wrapped by an older
   version, unwrap its content key with the old version and wrap it with the new one, and
   merge the new envelope into the blob's metadata (merge, never replace: the ETag guards
   against a concurrent change, and every other metadata key survives).
2. `retire` (run after `PIXELPIPE_SECRETS_CACHE_SECONDS` has passed, so every instance writes
   with the new version): re-wrap anything written with an old version meanwhile, then
   disable the old versions. A blob still needing a disabled version fails with
   DECRYPTION_FAILED naming the version; re-enabling it in Key Vault repairs that.

    python -m shared.security.rotation rotate
    python -m shared.security.rotation retire

Both run with the app's settings (in Azure: the identity needs Key Vault Secrets Officer and
Storage Blob Data Owner).
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from dataclasses import dataclass, field

from shared.runtime import Runtime, runtime
from shared.security.kek import KeyWrapKey
from shared.storage.clients import ORIGINALS, OUTBOX, QUARANTINE, RESULTS

__all__ = ["RotationReport", "private_containers", "retire", "rewrap_blob", "rotate"]


@dataclass
class RotationReport:
    kid: str
    rewrapped: int = 0
    current: int = 0
    unencrypted: list[str] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = (
            f"key {self.kid}: {self.rewrapped} envelopes re-wrapped, {self.current} already current"
        )
        if self.unencrypted:
            text += f", {len(self.unencrypted)} blobs without encryption (left alone)"
        if self.disabled:
            text += f"; disabled {len(self.disabled)} old versions"
        return text


def private_containers(rt: Runtime) -> tuple[str, ...]:
    """The containers whose blobs are client-side encrypted in this deployment."""
    outputs = (RESULTS, OUTBOX) if rt.settings.encrypt_outputs else ()
    return (ORIGINALS, QUARANTINE, *outputs)


def _envelope_key(metadata: dict[str, str]) -> str | None:
    return next((k for k in metadata if k.lower() == "encryptiondata"), None)


def rewrap_blob(rt: Runtime, container: str, name: str, new: KeyWrapKey) -> bool | None:
    """Re-wrap one blob's content key with `new`. True if changed, False if already current,
    None if the blob is not client-side encrypted."""
    store = rt.private_blobs
    metadata = dict(store.properties(container, name).metadata or {})
    key = _envelope_key(metadata)
    if key is None:
        return None
    envelope = json.loads(metadata[key])
    wrapped = envelope["WrappedContentKey"]
    if wrapped["KeyId"] == new.get_kid():
        return False
    old = rt.ring.resolve(wrapped["KeyId"])
    content_key = old.unwrap_key(base64.b64decode(wrapped["EncryptedKey"]), wrapped["Algorithm"])
    wrapped.update(
        KeyId=new.get_kid(),
        Algorithm=new.get_key_wrap_algorithm(),
        EncryptedKey=base64.b64encode(new.wrap_key(content_key)).decode(),
    )
    store.merge_metadata(container, name, {key: json.dumps(envelope)})
    return True


def _rewrap_all(rt: Runtime, new: KeyWrapKey) -> RotationReport:
    report = RotationReport(new.get_kid())
    for container in private_containers(rt):
        for blob in rt.clients.container(container).list_blobs():
            changed = rewrap_blob(rt, container, blob.name, new)
            if changed is None:
                report.unencrypted.append(f"{container}/{blob.name}")
            elif changed:
                report.rewrapped += 1
            else:
                report.current += 1
    return report


def rotate(rt: Runtime) -> RotationReport:
    """A new key version, and every private blob's envelope re-wrapped with it."""
    return _rewrap_all(rt, rt.ring.rotate())


def retire(rt: Runtime) -> RotationReport:
    """Re-wrap stragglers with the current version, then disable every older version."""
    current = rt.ring.current()
    report = _rewrap_all(rt, current)
    provider = rt.ring.provider
    for version in provider.versions(rt.ring.key_name):
        if version.enabled and version.id != current.get_kid():
            provider.disable(rt.ring.key_name, version.version)
            report.disabled.append(version.id)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m shared.security.rotation", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("action", choices=("rotate", "retire"))
    args = parser.parse_args(argv)
    rt = runtime()
    report = rotate(rt) if args.action == "rotate" else retire(rt)
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
