"""Channels, TUF and the edge device against the real stack: attacks refused, rollbacks accepted."""

from __future__ import annotations

import os
import secrets
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from tuf.api.metadata import Metadata

from azaion_pipeline.defs.publish.jobs import cleanup_job, refresh_job, rotate_root_job
from azaion_pipeline.defs.publish.resources import publish_resource_defs
from azaion_pipeline.lib.api_client import ApiError
from azaion_pipeline.lib.cdn import CdnError
from azaion_pipeline.lib.channels import promote, rollback_channel
from azaion_pipeline.lib.cleanup import clean_debris
from azaion_pipeline.lib.distribution import IntegrityError, ReleaseNames
from azaion_pipeline.lib.edge_fetch import FetchResult, UpdateRefused, fetch_current
from azaion_pipeline.lib.release_flow import publish_verified
from azaion_pipeline.lib.release_manifest import generate_signing_key, public_key_text
from azaion_pipeline.lib.tuf_repo import (
    GRACE_FIELD,
    KEY_ENV,
    PREVIOUS_ROOT_KEY_ENV,
    TufError,
    TufPolicy,
    TufRepository,
    generate_tuf_keys,
    load_signer,
    load_signers,
)
from azaion_pipeline_tests.seeding import trained_record

from .conftest import admin_client, api_client, cdn_store
from .test_published_model import export_record


@dataclass
class Channels:
    """One model name of its own per test, published and fetched through the real stack."""

    env: dict[str, str]
    folder: Path
    model: str

    def repo(self, channel: str = "canary", **clock) -> TufRepository:
        keys = {role: self.env[env] for role, env in KEY_ENV.items()}
        return TufRepository(
            cdn_store(self.env, "uploader"),
            self.model,
            channel,
            load_signers(keys),
            "models",
            TufPolicy(),
            **clock,
        )

    def publish(self, tag: str) -> tuple[str, bytes]:
        """A release of a random 40 kB "model" named azaion.bin; (its version, its bytes)."""
        folder = self.folder / tag
        folder.mkdir()
        weights, model = folder / "best.pt", folder / "azaion.bin"
        weights.write_bytes(tag.encode())  # other bytes, another model version
        model.write_bytes(os.urandom(40_000))
        workdir = folder / "work"
        workdir.mkdir()
        release = publish_verified(
            api_client(self.env),
            cdn_store(self.env, "uploader"),
            cdn_store(self.env, "downloader"),
            self.repo(),
            [
                export_record(
                    model,
                    "bin",
                    trained_record(weights, "2026-11-23-a", weights.parent / "missing-data.yaml"),
                )
            ],
            signing_key=self.env["AZAION_SIGNING_KEY"],
            model_secret=self.env["AZAION_MODEL_KEY"],
            model_name=self.model,
            admin=self.admin(),
            workdir=workdir,
            prefix="models",
        )
        return release.version, model.read_bytes()

    def admin(self):
        return admin_client(self.env)

    def leftovers(self) -> tuple[list[str], list[str]]:
        """Every object of this model's release folders on the CDN, every file on the API."""
        root = f"models/{self.model}/"
        cdn = [k for k in cdn_store(self.env, "uploader").list_keys(root) if "/tuf/" not in k]
        api = [f"{f.folder}/{f.filename}" for f in self.admin().list_files(root.rstrip("/"))]
        return cdn, api

    @property
    def out(self) -> Path:
        return self.folder / "device" / "azaion.bin"

    def fetch(self, channel: str = "canary", cdn=None, api=None, **kwargs) -> FetchResult:
        return fetch_current(
            api or api_client(self.env),
            cdn or cdn_store(self.env, "downloader"),
            state_dir=self.folder / "device-state",
            model_name=self.model,
            channel=channel,
            file_name="azaion.bin",
            out=self.out,
            model_secret=self.env["AZAION_MODEL_KEY"],
            public_key=self.env["AZAION_SIGNING_PUBLIC_KEY"],
            root_public_key=self.env["AZAION_TUF_ROOT_PUBLIC_KEY"],
            prefix="models",
            **kwargs,
        )

    def key(self, channel: str, name: str) -> str:
        return f"models/{self.model}/tuf/{channel}/{name}"


@pytest.fixture
def channels(stack, tmp_path) -> Channels:
    return Channels(stack, tmp_path, f"m{secrets.token_hex(4)}")


def test_rollback_attack_is_refused(channels):
    uploader = cdn_store(channels.env, "uploader")
    channels.publish("one")
    old_timestamp = uploader.get_bytes(channels.key("canary", "timestamp.json"))
    _, newer = channels.publish("two")
    assert channels.fetch().manifest is not None and channels.out.read_bytes() == newer
    # Someone holding CDN write keys puts the older, validly signed metadata back.
    uploader.put_bytes(channels.key("canary", "timestamp.json"), old_timestamp)
    with pytest.raises(UpdateRefused, match="lower version than this device already trusts"):
        channels.fetch()
    assert channels.out.read_bytes() == newer


def test_freeze_attack_is_refused(channels):
    channels.publish("one")
    channels.fetch()
    # The last metadata before the freeze: its timestamp has expired, and it is all that is served.
    eight_days_ago = datetime.now(UTC) - timedelta(days=8)
    channels.repo(now=lambda: eight_days_ago).refresh()
    with pytest.raises(UpdateRefused, match="the metadata has expired: a freeze"):
        channels.fetch()


def test_mixed_metadata_is_refused(channels):
    uploader = cdn_store(channels.env, "uploader")
    channels.publish("one")
    promote(channels.repo("canary"), channels.repo("stable"))
    # Both channels are at targets version 1; swap in stable's, validly signed, as canary's.
    stable_targets = uploader.get_bytes(channels.key("stable", "1.targets.json"))
    uploader.put_bytes(channels.key("canary", "1.targets.json"), stable_targets)
    with pytest.raises(UpdateRefused, match="mixed metadata"):
        channels.fetch()
    assert not channels.out.exists()


def test_oversized_metadata_is_refused_without_reading_it_all(channels):
    channels.publish("one")
    cdn_store(channels.env, "uploader").put_bytes(
        channels.key("canary", "timestamp.json"), b"{" + b" " * (1024 * 1024)
    )
    with pytest.raises(UpdateRefused, match=r"timestamp\.json is longer than the 16384 bytes"):
        channels.fetch()


def test_rollback_through_the_job_is_accepted_by_a_device_that_had_the_newer_release(channels):
    first, first_model = channels.publish("one")
    second, second_model = channels.publish("two")
    assert channels.fetch().version == second and channels.out.read_bytes() == second_model
    move = rollback_channel(channels.repo())
    assert (move.version, move.previous, move.targets_version) == (first, second, 3)
    assert channels.fetch().version == first and channels.out.read_bytes() == first_model
    with pytest.raises(TufError, match="never served nope"):
        rollback_channel(channels.repo(), "nope")


def test_promotion_and_channel_separation(channels):
    version, model = channels.publish("one")
    with pytest.raises(CdnError, match=r"stable channel of .* has never been published"):
        channels.fetch("stable")
    promote(channels.repo("canary"), channels.repo("stable"))
    result = channels.fetch("stable")
    assert result.version == version and channels.out.read_bytes() == model


def test_a_big_part_longer_than_signed_is_never_downloaded_whole(channels):
    version, _ = channels.publish("one")
    uploader = cdn_store(channels.env, "uploader")
    big = ReleaseNames(channels.model, version).big("azaion.bin")
    uploader.put_bytes(big, uploader.get_bytes(big) + os.urandom(5 * 1024 * 1024))
    with pytest.raises(
        IntegrityError, match=r"azaion\.bin\.big.*longer than the \d+ bytes its metadata allows"
    ):
        channels.fetch()
    assert not channels.out.exists()


def test_stale_temporary_folders_are_removed_on_the_next_run(channels):
    channels.publish("one")
    killed = channels.out.parent / ".azaion.bin.fetch-killed"
    (killed / "part").mkdir(parents=True)
    scratch = channels.folder / "device-state" / "tmp" / "leftover"
    scratch.parent.mkdir(parents=True)
    scratch.write_bytes(b"x")
    result = channels.fetch()
    assert set(result.stale_removed) == {killed, scratch}
    assert sorted(p.name for p in channels.out.parent.iterdir()) == ["azaion.bin"]


def _dead_endpoint_store(env: dict[str, str]):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return cdn_store(env, "downloader", endpoint=f"http://127.0.0.1:{port}", max_attempts=1)


def test_offline_device_keeps_its_model_only_within_the_signed_grace(channels):
    channels.publish("one")
    offline = _dead_endpoint_store(channels.env)
    with pytest.raises(CdnError, match=r"cannot reach .*s3://.*1\.root\.json.*Connect") as error:
        channels.fetch(cdn=offline)  # never online: nothing installed to keep
    assert "Max Retries" not in str(error.value)

    installed = channels.fetch().version
    assert channels.fetch(cdn=offline).offline and channels.out.exists()
    in_a_month = datetime.now(UTC) + timedelta(days=30)
    with pytest.raises(UpdateRefused, match="more than the signed grace of 3 days"):
        channels.fetch(cdn=offline, now=lambda: in_a_month)
    assert channels.fetch(cdn=offline).version == installed


def test_refresh_signs_a_new_timestamp_devices_follow(channels):
    version, _ = channels.publish("one")
    channels.fetch()
    first = channels.repo().refresh()
    assert channels.repo().refresh() == first + 1
    assert channels.fetch().version == version


def test_keys_that_are_not_the_published_roots_are_refused(channels):
    channels.publish("one")
    keys = {role: channels.env[env] for role, env in KEY_ENV.items()}
    keys["targets"] = channels.env["AZAION_SIGNING_KEY"]  # some other valid key
    repo = TufRepository(
        cdn_store(channels.env, "uploader"), channels.model, "canary", load_signers(keys), "models"
    )
    with pytest.raises(TufError, match=r"AZAION_TUF_TARGETS_KEY .* rotate the root first") as error:
        repo.refresh()
    assert channels.env["AZAION_SIGNING_KEY"] not in str(error.value)


def _leave_debris(channels: Channels) -> tuple[str, str]:
    """A partial release folder and an unfinished multipart upload, as a killed publish leaves them."""
    uploader = cdn_store(channels.env, "uploader")
    partial = f"models/{channels.model}/20260101T000000000000Z-killed"
    uploader.put_bytes(f"{partial}/azaion.bin.big", os.urandom(1000), "application/octet-stream")
    unfinished = f"models/{channels.model}/20260101T000000000001Z-cut/azaion.bin.big"
    upload = uploader.client.create_multipart_upload(Bucket=uploader.bucket, Key=unfinished)
    uploader.client.upload_part(
        Bucket=uploader.bucket,
        Key=unfinished,
        UploadId=upload["UploadId"],
        PartNumber=1,
        Body=os.urandom(1000),
    )
    return partial.rsplit("/", 1)[1], unfinished


def test_cleanup_removes_debris_and_keeps_every_complete_release(channels):
    version, model = channels.publish("one")
    uploader = cdn_store(channels.env, "uploader")
    before = set(uploader.list_keys(f"models/{channels.model}/"))
    partial, unfinished = _leave_debris(channels)

    young = clean_debris(uploader, channels.model, "models", older_than=timedelta(hours=1))
    assert young.partial_releases == [] and young.aborted_uploads == []
    assert young.kept_young == [partial]

    in_two_hours = datetime.now(UTC) + timedelta(hours=2)
    report = clean_debris(
        uploader, channels.model, "models", older_than=timedelta(hours=1), now=in_two_hours
    )
    assert report.partial_releases == [partial]
    assert report.removed_objects == [f"models/{channels.model}/{partial}/azaion.bin.big"]
    assert report.aborted_uploads == [unfinished]
    assert uploader.incomplete_uploads(unfinished) == []
    # Every object of the complete release and all TUF metadata are still there, and it loads.
    assert set(uploader.list_keys(f"models/{channels.model}/")) == before
    assert channels.fetch().version == version and channels.out.read_bytes() == model


def test_cleanup_job_reports_what_it_removed(channels, stack_env):
    version, _ = channels.publish("one")
    partial, unfinished = _leave_debris(channels)
    small = f"models/{channels.model}/{partial}/azaion.bin.small"
    api_client(channels.env).upload_file(small.rsplit("/", 1)[0], "azaion.bin.small", b"half")
    time.sleep(1)  # the debris is now older than the job's half-second threshold
    instance = dg.DagsterInstance.ephemeral()
    config = {"model_name": channels.model, "older_than_hours": 0.5 / 3600}
    result = cleanup_job.execute_in_process(
        instance=instance,
        resources=publish_resource_defs(),
        run_config={"ops": {"remove_publish_debris": {"config": config}}},
    )
    assert result.success
    logs = "\n".join(record.user_message for record in instance.all_logs(result.run_id))
    assert f"removed the partial release {partial}" in logs
    assert f"aborted the unfinished upload of {unfinished}" in logs
    assert f"removed the abandoned {small} from the API" in logs
    assert (
        "removed 1 partial release(s) (1 object(s)), aborted 1 unfinished upload(s), "
        "removed 1 abandoned .small part(s)"
    ) in logs
    assert channels.fetch().version == version


def test_release_jobs_and_the_refresh_schedule_are_in_the_code_location(channels, stack_env):
    from azaion_pipeline.definitions import defs

    repository = defs.get_repository_def()
    assert {
        "rollback",
        "promote_to_stable",
        "refresh_release_metadata",
        "cleanup_publish_debris",
        "rotate_release_root",
    } <= {job.name for job in repository.get_all_jobs()}
    schedule = repository.get_schedule_def("release_metadata_refresh_schedule")
    assert schedule.job_name == "refresh_release_metadata"
    assert "tuf_metadata" in repository.get_top_level_resources()

    version, _ = channels.publish("one")
    channels.fetch()
    uploader = cdn_store(channels.env, "uploader")
    before = uploader.get_bytes(channels.key("canary", "timestamp.json"))
    refreshed = refresh_job.execute_in_process(
        resources=publish_resource_defs(),
        run_config={"ops": {"refresh_timestamps": {"config": {"model_name": channels.model}}}},
    )
    assert refreshed.success
    assert uploader.get_bytes(channels.key("canary", "timestamp.json")) != before
    assert channels.fetch().version == version


def test_a_racing_publish_never_overwrites_signed_metadata(channels):
    first, model = channels.publish("one")
    uploader = cdn_store(channels.env, "uploader")
    raced = b'{"written": "by another publish of this channel"}'
    uploader.put_bytes(channels.key("canary", "2.targets.json"), raced)
    with pytest.raises(TufError, match=r"2\.targets\.json already exists: another publish"):
        channels.publish("two")
    assert uploader.get_bytes(channels.key("canary", "2.targets.json")) == raced
    assert channels.fetch().version == first and channels.out.read_bytes() == model


def test_a_failing_api_names_the_small_part_and_the_cause(channels, injected):
    channels.publish("one")
    injected.fail("/resources/get/", 503)
    with pytest.raises(ApiError, match=r"loading .*/azaion\.bin\.small: .*HTTP 503"):
        channels.fetch(api=api_client(channels.env, retries=0))
    assert not channels.out.exists()


def test_a_failed_publish_leaves_nothing_on_either_side(channels, injected):
    first, model = channels.publish("one")
    kept = channels.leftovers()
    # Staging works, loading the staged release back does not: the round trip fails.
    injected.fail("/resources/get/", 503)
    with pytest.raises(IntegrityError, match=r"did not load back.*canary channel did not move"):
        channels.publish("two")
    # Dying half-way through the uploads: the CDN holds a .big, the API nothing yet.
    injected.clear()
    injected.fail("/resources/models/", 503)
    with pytest.raises(ApiError, match="HTTP 503"):
        channels.publish("three")
    injected.clear()
    assert channels.leftovers() == kept
    assert channels.fetch().version == first and channels.out.read_bytes() == model


def test_cleanup_removes_abandoned_small_parts_and_seals_complete_releases(channels):
    version, model = channels.publish("one")
    cdn_kept, api_kept = channels.leftovers()
    partial, _ = _leave_debris(channels)
    # A killed publish: its .small reached the API, but no release.json reached the CDN.
    api_client(channels.env).upload_file(
        f"models/{channels.model}/{partial}", "azaion.bin.small", b"half a publish"
    )
    # A complete release whose seal was lost (its publish died right after the channel moved).
    complete = f"models/{channels.model}/{version}"
    (Path(channels.env["AZAION_DEVSTACK_STORAGE_DIR"]) / complete / ".sealed").unlink()
    admin = channels.admin()
    in_two_hours = datetime.now(UTC) + timedelta(hours=2)
    report = clean_debris(
        cdn_store(channels.env, "uploader"),
        channels.model,
        "models",
        older_than=timedelta(hours=1),
        now=in_two_hours,
        admin=admin,
    )
    assert report.removed_smalls == [f"models/{channels.model}/{partial}/azaion.bin.small"]
    assert report.sealed == [version]
    assert channels.leftovers() == (cdn_kept, api_kept)
    with pytest.raises(ApiError, match=r"HTTP 409.*complete release"):
        admin.delete_file(complete, "azaion.bin.small")
    assert channels.fetch().version == version and channels.out.read_bytes() == model


def test_timestamp_expiry_and_offline_grace_are_signed_and_configurable(
    channels, stack_env, monkeypatch
):
    uploader = cdn_store(channels.env, "uploader")

    def signed(name: str):
        return Metadata.from_bytes(uploader.get_bytes(channels.key("canary", name))).signed

    before = datetime.now(UTC).replace(microsecond=0)
    version, _ = channels.publish("one")
    assert before + timedelta(days=7) <= signed("timestamp.json").expires
    assert signed("timestamp.json").expires <= datetime.now(UTC) + timedelta(days=7)
    assert signed("root.json").unrecognized_fields[GRACE_FIELD] == 3 * 24 * 3600

    monkeypatch.setenv("AZAION_TUF_TIMESTAMP_EXPIRY_DAYS", "2")
    monkeypatch.setenv("AZAION_TUF_OFFLINE_GRACE_DAYS", "0.5")
    before = datetime.now(UTC).replace(microsecond=0)
    refreshed = refresh_job.execute_in_process(
        resources=publish_resource_defs(),
        run_config={"ops": {"refresh_timestamps": {"config": {"model_name": channels.model}}}},
    )
    assert refreshed.success
    assert before + timedelta(days=2) <= signed("timestamp.json").expires
    assert signed("timestamp.json").expires <= datetime.now(UTC) + timedelta(days=2)
    # The new grace is a new root version, signed by the root key, which the device follows.
    root = signed("root.json")
    assert (root.version, root.unrecognized_fields[GRACE_FIELD]) == (2, 12 * 3600)
    assert channels.fetch().version == version


def test_an_unreachable_api_is_named_with_the_small_part_and_the_cause(channels):
    channels.publish("one")
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    api = api_client({**channels.env, "AZAION_API_URL": dead}, retries=1)
    with pytest.raises(ApiError, match=r"azaion\.bin\.small.*Connection refused"):
        channels.fetch(api=api)
    assert not channels.out.exists()


def test_a_device_follows_a_root_key_rotation(channels, stack_env, monkeypatch, tmp_path):
    first, first_model = channels.publish("one")
    assert channels.fetch().version == first  # the device now trusts root 1 and the old keys
    new_keys = generate_tuf_keys()  # root and every role
    for name, value in {**new_keys, PREVIOUS_ROOT_KEY_ENV: channels.env[KEY_ENV["root"]]}.items():
        monkeypatch.setenv(name, value)
    rotated = rotate_root_job.execute_in_process(
        resources=publish_resource_defs(),
        run_config={"ops": {"rotate_root_keys": {"config": {"model_name": channels.model}}}},
    )
    assert rotated.success
    # The publisher now signs with the new keys only; the device keeps its old pinned key.
    channels.env = {**channels.env, **new_keys}
    assert channels.fetch().version == first
    trusted = channels.folder / "device-state" / "tuf" / channels.model / "canary" / "root.json"
    assert Metadata.from_file(str(trusted)).signed.version == 2

    second, second_model = channels.publish("two")
    assert channels.fetch().version == second and channels.out.read_bytes() == second_model
    # The release served across the rotation was re-signed with the new keys: it can come back.
    assert rollback_channel(channels.repo()).version == first
    assert channels.fetch().version == first and channels.out.read_bytes() == first_model

    # A device set up after the rotation pins the new root key and starts from the newest root.
    new_root_public = public_key_text(new_keys[KEY_ENV["root"]])
    fresh = Channels(
        {**channels.env, "AZAION_TUF_ROOT_PUBLIC_KEY": new_root_public},
        tmp_path / "new",
        channels.model,
    )
    assert fresh.fetch().version == first

    # A next root not co-signed by the trusted root key is refused, whoever signed it.
    forged = Metadata.from_file(str(trusted))
    forged.signed.version = 3
    forged.signed.roles["root"].keyids = []
    attacker = load_signer(generate_signing_key()[0])
    forged.signed.add_key(attacker.public_key, "root")
    forged.sign(attacker)
    cdn_store(channels.env, "uploader").put_bytes(
        channels.key("canary", "3.root.json"), forged.to_bytes()
    )
    with pytest.raises(UpdateRefused, match="not signed by the keys this device trusts"):
        channels.fetch()


def test_cleanup_unblocks_a_channel_whose_metadata_write_was_cut_short(channels):
    first, _ = channels.publish("one")
    uploader = cdn_store(channels.env, "uploader")
    # A publish died after writing its targets, before snapshot and timestamp: the next one stops.
    dangling = channels.key("canary", "2.targets.json")
    uploader.put_bytes(dangling, uploader.get_bytes(channels.key("canary", "1.targets.json")))
    with pytest.raises(TufError, match=r"2\.targets\.json already exists"):
        channels.publish("two")
    in_two_hours = datetime.now(UTC) + timedelta(hours=2)
    kept = clean_debris(uploader, channels.model, "models", older_than=timedelta(hours=3))
    assert kept.unreferenced_metadata == [] and uploader.exists(dangling)
    report = clean_debris(
        uploader, channels.model, "models", older_than=timedelta(hours=1), now=in_two_hours
    )
    assert report.unreferenced_metadata == [dangling]
    assert channels.fetch().version == first  # what the channel serves is untouched
    second, model = channels.publish("three")
    assert channels.fetch().version == second and channels.out.read_bytes() == model
