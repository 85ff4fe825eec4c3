"""Exactly once on disk: SIGKILL mid-file, a restarting broker, a broker that stays away.

The consumer runs as the real ``azaion-pipeline consume`` process.
"""

from __future__ import annotations

import asyncio
import errno
import signal
from pathlib import Path

import pytest

from azaion_pipeline.lib.intake.batches import BatchLog
from azaion_pipeline.lib.intake.consumer import IntakeConsumer, IntakeSettings, NotDurable
from azaion_pipeline.lib.intake.messages import (
    AnnotationStatus,
    Role,
    encode_annotation,
    encode_bulk,
)
from azaion_pipeline.lib.intake.store import AnnotationStore
from azaion_pipeline.lib.layout import AzaionLayout
from azaion_pipeline_tests.intake.conftest import (
    jpeg,
    lag,
    manifests,
    send,
    start_consumer,
    stored_offset,
    wait_for,
)

AREAS = ("data", "data-seed", "data_deleted")
CREATED_COUNT = 700


def _name(index: int) -> str:
    return f"frame-{index:04d}"


def _boxes(index: int, edited: bool = False) -> list[tuple[int, float, float, float, float]]:
    return [(index % 17, 0.5, 0.5, 0.1 + (0.3 if edited else 0.0), 0.2)]


def _messages() -> list[tuple[bytes, AnnotationStatus]]:
    """1,000 messages: 700 Created (operators even, validators odd), 150 Validated,
    100 Deleted, 50 Edited by operators."""
    messages = []
    for i in range(CREATED_COUNT):
        role = Role.OPERATOR if i % 2 == 0 else Role.VALIDATOR
        body = encode_annotation(
            name=_name(i), image=jpeg(i), label_boxes=_boxes(i), created_role=role,
            created_email="someone@azaion.local", original_media_name=f"video-{i // 25}.mp4",
        )  # fmt: skip
        messages.append((body, AnnotationStatus.CREATED))
    messages += [(encode_bulk([_name(i)]), AnnotationStatus.VALIDATED) for i in range(0, 300, 2)]
    messages += [(encode_bulk([_name(i)]), AnnotationStatus.DELETED) for i in range(1, 201, 2)]
    for i in range(400, 500, 2):
        body = encode_annotation(
            name=_name(i), image=b"", label_boxes=_boxes(i, edited=True),
            created_role=Role.OPERATOR, created_email="someone@azaion.local",
            status=AnnotationStatus.EDITED,
        )  # fmt: skip
        messages.append((body, AnnotationStatus.EDITED))
    assert len(messages) == 1000
    return messages


def _label(boxes: list[tuple[int, float, float, float, float]]) -> str:
    return "".join(f"{c} {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n" for c, x, y, w, h in boxes)


def _expected_created_label(index: int) -> str:
    return _label(_boxes(index))


def _expected() -> dict[str, tuple[str, str]]:
    """Azaion's routing for _messages(), worked out by hand: name -> (area, label)."""
    expected = {}
    for i in range(CREATED_COUNT):
        area = "data-seed" if i % 2 == 0 else "data"
        if i % 2 == 0 and i < 300:
            area = "data"  # validated
        if i % 2 == 1 and i < 201:
            area = "data_deleted"
        edited = i % 2 == 0 and 400 <= i < 500
        expected[_name(i)] = (area, _label(_boxes(i, edited)))
    return expected


def _labels(root: Path) -> int:
    return sum(
        len(list((root / area / "provenance").glob("*.json")))
        for area in AREAS
        if (root / area / "provenance").is_dir()
    )


def _debris(root: Path) -> list[Path]:
    return [
        path
        for area in AREAS
        if (root / area / ".intake-partial").is_dir()
        for path in (root / area / ".intake-partial").iterdir()
    ]


def test_sigkill_mid_file_loses_nothing_and_applies_nothing_twice(stream_settings, tmp_path):
    messages = _messages()
    # Seal every 400 messages; the first run SIGKILLs itself halfway through writing file
    # 1,500 (Created writes 3 files each: about message 500), while its writer threads are
    # busy with other files of the same chunk: batch 400..799 is open, ~100 applied, unsealed.
    first = start_consumer(
        stream_settings, tmp_path, batch_messages=400, batch_seconds=3600, kill_mid_file=1500
    )
    send(stream_settings, messages[:400])
    wait_for(lambda: stored_offset(stream_settings) == 399, what="the first batch stored")
    send(stream_settings, messages[400:])
    output, _ = first.communicate(timeout=300)
    assert first.returncode == -signal.SIGKILL, output
    assert stored_offset(stream_settings) == 399  # 400.. applied in part, not stored
    assert _debris(tmp_path), "the killed write left its partial file"
    # No partial file is visible as an annotation, even before the restart cleans up.
    for area in AREAS:
        for image in (tmp_path / area / "images").iterdir():
            assert image.read_bytes() == jpeg(int(image.stem[-4:])), image
        for label in (tmp_path / area / "labels").iterdir():
            assert label.read_text() == _expected_created_label(int(label.stem[-4:])), label

    second = start_consumer(
        stream_settings, tmp_path, "--until-idle", "2", batch_messages=400, batch_seconds=3600
    )
    output, _ = second.communicate(timeout=300)
    assert second.returncode == 0, output
    assert lag(stream_settings) == 0

    # File level: every annotation once, in the right folder, with the right label and image.
    for name, (area, label) in _expected().items():
        found = [a for a in AREAS if (tmp_path / a / "labels" / f"{name}.txt").exists()]
        found_images = [a for a in AREAS if (tmp_path / a / "images" / f"{name}.jpg").exists()]
        assert found == [area] and found_images == [area], name
        assert (tmp_path / area / "labels" / f"{name}.txt").read_text() == label, name
        assert (tmp_path / area / "images" / f"{name}.jpg").read_bytes() == jpeg(int(name[-4:]))
    for area in AREAS:
        for sub in ("images", "labels", "provenance"):
            assert len(list((tmp_path / area / sub).iterdir())) == sum(
                1 for a, _ in _expected().values() if a == area
            )
    assert not _debris(tmp_path)
    assert not (tmp_path / "intake" / "dead-letter").exists() or not list(
        (tmp_path / "intake" / "dead-letter").iterdir()
    )
    # The restart replayed 400.. : what the killed run had completed counts as skipped, the
    # rest (the half-written one included) as written; nothing was applied twice.
    sealed = manifests(tmp_path)
    assert [m.consumed for m in sealed] == [400, 400, 200]
    # The stored offset takes a stream offset of its own (400), so the next batch starts after.
    assert sealed[0].last_offset == 399 and sealed[1].first_offset > 399
    skipped = sum(m.skipped for m in sealed)
    assert 0 < skipped < 300
    assert sum(m.written for m in sealed) + skipped == 400 + 300 + 50
    assert sum(m.moved for m in sealed) == 250


def test_broker_restart_under_the_consumer(rabbitmq, stream_settings, tmp_path):
    def created(i: int) -> tuple[bytes, AnnotationStatus]:
        body = encode_annotation(
            name=_name(i), image=jpeg(i), label_boxes=_boxes(i), created_role=Role.VALIDATOR,
            created_email="someone@azaion.local",
        )  # fmt: skip
        return body, AnnotationStatus.CREATED

    consumer = start_consumer(stream_settings, tmp_path, batch_messages=50, batch_seconds=1)
    try:
        send(stream_settings, [created(i) for i in range(100)])
        wait_for(lambda: _labels(tmp_path) == 100, what="the first 100 on disk")
        wait_for(lambda: lag(stream_settings) == 0, what="the first 100 stored")
        rabbitmq.restart()
        send(stream_settings, [created(i) for i in range(100, 200)])
        wait_for(lambda: _labels(tmp_path) == 200, what="the next 100 on disk")
        wait_for(lambda: lag(stream_settings) == 0, what="the next 100 stored")
        assert consumer.poll() is None  # it rode the restart out
    finally:
        consumer.send_signal(signal.SIGTERM)
        output, _ = consumer.communicate(timeout=60)
    assert consumer.returncode == 0, output
    assert "reconnecting" in output
    assert len(list((tmp_path / "data" / "labels").iterdir())) == 200


def test_broker_gone_past_the_limit_exits_nonzero(rabbitmq, stream_settings, tmp_path):
    send(stream_settings, [(encode_bulk([]), AnnotationStatus.VALIDATED)])
    consumer = start_consumer(
        stream_settings,
        tmp_path,
        batch_seconds=1,
        broker_absence_limit_s=3,
        reconnect_max_backoff_s=1,
    )
    try:
        wait_for(lambda: stored_offset(stream_settings) == 0, what="the consumer at work")
        rabbitmq.stop()
        output, _ = consumer.communicate(timeout=120)
    finally:
        if consumer.poll() is None:
            consumer.kill()
        rabbitmq.start()
    assert consumer.returncode == 3, output
    assert "unreachable for" in output


class _BrokenDisk(AnnotationStore):
    def sync(self) -> None:
        raise OSError(errno.EIO, "Input/output error")


def test_a_batch_that_cannot_be_flushed_stops_the_consumer_unstored(stream_settings, tmp_path):
    send(stream_settings, [(encode_bulk([]), AnnotationStatus.VALIDATED)] * 3)
    layout = AzaionLayout.under(tmp_path)
    consumer = IntakeConsumer(
        _BrokenDisk(layout),
        BatchLog(layout),
        stream_settings,
        IntakeSettings(batch_messages=2),
        until_idle_s=1,
    )
    with pytest.raises(NotDurable, match="Input/output error"):
        asyncio.run(consumer.run())
    assert stored_offset(stream_settings) == -1  # replayed from the start next time
    assert manifests(tmp_path) == []
