"""Private blobs are client-side encrypted (v2, AES-GCM) with rotating keys (SECURITY.md)."""

from __future__ import annotations

import json

import pytest

from shared.errors import DecryptionFailed
from shared.jobs import processing
from shared.jobs.service import JobService, Submission
from shared.jobs.spec import parse_spec
from shared.security.auth import Principal
from shared.security.kek import encryption_kid
from shared.security.rotation import retire, rotate
from shared.storage.clients import ORIGINALS, QUARANTINE
from tests.fixtures import images

pytestmark = pytest.mark.azurite

ALICE = Principal("tenant/alice", "alice", "tenant", "alice", "alice")


def submit(rt, ops=({"op": "flip"},)):
    spec = parse_spec({"operations": list(ops)})
    job, _ = JobService(rt).submit(ALICE, Submission(images.jpeg(), spec, "a.jpg"))
    return job


def raw(rt, container, name):
    """The stored bytes, read without decrypting."""
    return rt.clients.container(container).download_blob(name).readall()


def kid_of(rt, container, name):
    return encryption_kid(rt.plain_blobs.properties(container, name).metadata)


def test_originals_are_encrypted_at_rest(rt):
    job = submit(rt)
    stored = raw(rt, ORIGINALS, job.source_blob)
    assert not stored.startswith(b"\xff\xd8\xff") and stored != images.jpeg()
    envelope = json.loads(
        rt.plain_blobs.properties(ORIGINALS, job.source_blob).metadata["encryptiondata"]
    )
    assert envelope["EncryptionAgent"] == {"Protocol": "2.0", "EncryptionAlgorithm": "AES_GCM_256"}
    assert envelope["WrappedContentKey"]["Algorithm"] == "A256KW"
    assert envelope["WrappedContentKey"]["KeyId"] == rt.ring.current().get_kid()
    assert rt.private_blobs.get(ORIGINALS, job.source_blob) == images.jpeg()


def test_outputs_are_plain_for_sas_links(rt):
    job = submit(rt)
    job, operations = rt.store.get_with_operations(job.id)
    (task,) = processing.dispatch_tasks(rt, job, operations)
    processing.run_operation(rt, task)
    assert raw(rt, task.output_container, task.output_blob).startswith(b"\xff\xd8\xff")


def test_rotation_mid_job_old_blobs_still_decrypt_and_new_ones_use_the_new_key(rt):
    before = submit(rt)
    old_kid = kid_of(rt, ORIGINALS, before.source_blob)
    new_kid = rt.ring.rotate().get_kid()
    assert new_kid != old_kid
    job, operations = rt.store.get_with_operations(before.id)
    (task,) = processing.dispatch_tasks(rt, job, operations)
    assert processing.run_operation(rt, task)["status"] == "succeeded"  # old key resolved
    after = submit(rt)
    assert kid_of(rt, ORIGINALS, after.source_blob) == new_kid


def test_rotate_rewraps_envelopes_without_touching_data(rt):
    job = submit(rt)
    ciphertext = raw(rt, ORIGINALS, job.source_blob)
    old_kid = kid_of(rt, ORIGINALS, job.source_blob)
    report = rotate(rt)
    assert report.rewrapped == 1 and report.kid != old_kid
    assert kid_of(rt, ORIGINALS, job.source_blob) == report.kid
    assert raw(rt, ORIGINALS, job.source_blob) == ciphertext  # data untouched
    assert rt.private_blobs.get(ORIGINALS, job.source_blob) == images.jpeg()
    assert rotate(rt).rewrapped == 1  # and again


def test_retire_disables_old_versions_and_blobs_still_decrypt(rt):
    job = submit(rt)
    rotate(rt)
    straggler = submit(rt)  # written with the new key: nothing to do for it
    report = retire(rt)
    assert report.disabled and report.rewrapped == 0 and report.current == 2
    assert rt.private_blobs.get(ORIGINALS, job.source_blob) == images.jpeg()
    assert rt.private_blobs.get(ORIGINALS, straggler.source_blob) == images.jpeg()


def test_a_blob_whose_key_version_is_gone_fails_clearly_naming_the_kid(rt):
    job = submit(rt)
    old_kid = kid_of(rt, ORIGINALS, job.source_blob)
    rt.ring.rotate()
    old_version = old_kid.rsplit("/", 1)[-1]
    rt.ring.provider.disable(rt.ring.key_name, old_version)
    with pytest.raises(DecryptionFailed) as err:
        rt.private_blobs.get(ORIGINALS, job.source_blob)
    assert err.value.kid == old_kid and old_kid in err.value.message
    assert err.value.code == "DECRYPTION_FAILED"
    job, operations = rt.store.get_with_operations(job.id)
    (task,) = processing.dispatch_tasks(rt, job, operations)
    outcome = processing.run_operation(rt, task)
    assert outcome["error"]["code"] == "DECRYPTION_FAILED" and outcome["error"]["kid"] == old_kid


def test_metadata_updates_keep_the_envelope(rt):
    job = submit(rt)
    rt.private_blobs.merge_metadata(ORIGINALS, job.source_blob, {"reviewed": "yes"})
    rotate(rt)  # rotation itself is a metadata update
    rt.private_blobs.merge_metadata(ORIGINALS, job.source_blob, {"sha256": "kept-anyway"})
    metadata = rt.plain_blobs.properties(ORIGINALS, job.source_blob).metadata
    assert metadata["reviewed"] == "yes" and "encryptiondata" in metadata
    assert rt.private_blobs.get(ORIGINALS, job.source_blob) == images.jpeg()


def test_quarantined_files_are_encrypted(rt):
    rt.clients.container("inbox").upload_blob("bad.jpg", images.truncated_jpeg())
    from shared.jobs.ingest import ingest_blob

    assert ingest_blob(rt, "bad.jpg") is None
    names = [b.name for b in rt.clients.container(QUARANTINE).list_blobs()]
    assert all(kid_of(rt, QUARANTINE, name) for name in names)
    assert rt.private_blobs.get(QUARANTINE, names[0]) == images.truncated_jpeg()


def test_outputs_kept_encrypted_are_streamed_decrypted_through_the_api(rt, monkeypatch, issuer):
    import dataclasses

    from tests.functions.helpers import call

    monkeypatch.setattr(rt, "settings", dataclasses.replace(rt.settings, encrypt_outputs=True))
    token = issuer.token("alice-enc")
    principal = rt.auth.authenticate(f"Bearer {token}")
    spec = parse_spec({"operations": [{"op": "flip", "format": "png"}]})
    job, _ = JobService(rt).submit(principal, Submission(images.jpeg(), spec, "a.jpg"))
    job, operations = rt.store.get_with_operations(job.id)
    (task,) = processing.dispatch_tasks(rt, job, operations)
    processing.run_operation(rt, task)
    assert not raw(rt, task.output_container, task.output_blob).startswith(b"\x89PNG")
    assert kid_of(rt, task.output_container, task.output_blob)
    document = call("job", token=token, route_params={"id": job.id}).json()
    output = document["operations"][0]["output"]
    assert output["url"] == f"/api/jobs/{job.id}/outputs/0" and output["expiresAt"] is None
    reply = call("output", token=token, route_params={"id": job.id, "ref": "0"})
    assert reply.status == 200 and reply.body.startswith(b"\x89PNG")
    assert reply.headers["Content-Type"].startswith("image/png")
    assert reply.headers["Content-Disposition"].startswith("attachment;")
    assert (
        call(
            "output", token=issuer.token("mallory"), route_params={"id": job.id, "ref": "0"}
        ).status
        == 404
    )
    processing.finalize(rt, job.id, timed_out=False)  # the manifest is encrypted too
    assert kid_of(rt, task.output_container, f"{job.id}/manifest.json")


def test_a_plain_or_damaged_or_missing_private_blob_is_refused_with_a_clear_error(rt):
    from shared.errors import NotFound

    rt.clients.container(ORIGINALS).upload_blob("planted.jpg", images.jpeg())
    with pytest.raises(DecryptionFailed) as err:
        rt.private_blobs.get(ORIGINALS, "planted.jpg")
    assert "not encrypted" in err.value.message
    job = submit(rt)
    kid = kid_of(rt, ORIGINALS, job.source_blob)
    stored = bytearray(raw(rt, ORIGINALS, job.source_blob))
    stored[-20] ^= 0xFF  # the AES-GCM tag no longer matches
    blob = rt.clients.container(ORIGINALS).get_blob_client(job.source_blob)
    metadata = blob.get_blob_properties().metadata
    blob.upload_blob(bytes(stored), overwrite=True, metadata=metadata)
    with pytest.raises(DecryptionFailed) as err:
        rt.private_blobs.get(ORIGINALS, job.source_blob)
    assert err.value.kid == kid
    with pytest.raises(NotFound):
        rt.private_blobs.get(ORIGINALS, "never-written.jpg")
