"""Playing the annotation platform: publish annotations onto the stream (demos, tests, benchmarks).

``publish`` sends encoded bodies with their ``AnnotationStatus`` property and waits for the
broker's confirmations. ``folder_messages`` turns an Azaion root's ``data/`` and ``data-seed/``
pairs into Created messages as the platform would send them: a validator's for ``data/``, an
operator's for ``data-seed/``, with the provenance a sidecar holds when there is one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rstream import AMQPMessage, ConfirmationStatus, Producer

from azaion_pipeline.lib.intake.consumer import StreamSettings
from azaion_pipeline.lib.intake.messages import (
    STATUS_PROPERTY,
    AnnotationStatus,
    Role,
    Source,
    encode_annotation,
)
from azaion_pipeline.lib.intake.provenance import read_provenance
from azaion_pipeline.lib.layout import IMAGES, LABELS, AzaionLayout

PUBLISH_CHUNK = 64
CONFIRM_TIMEOUT_S = 120.0


async def publish(
    stream: StreamSettings, messages: Iterable[tuple[bytes, AnnotationStatus]]
) -> int:
    """Send every (body, status) in order; returns how many the broker confirmed."""
    confirmed = 0
    failed: list[int] = []
    sent = 0
    all_confirmed = asyncio.Event()

    def on_confirm(status: ConfirmationStatus) -> None:
        nonlocal confirmed
        if status.is_confirmed:
            confirmed += 1
        else:
            failed.append(status.message_id)
        if confirmed + len(failed) == sent:
            all_confirmed.set()

    async with Producer(**stream.client_kwargs()) as producer:
        await producer.create_stream(stream.queue_name, exists_ok=True)
        chunk: list[AMQPMessage] = []
        for body, status in messages:
            chunk.append(
                AMQPMessage(body=body, application_properties={STATUS_PROPERTY: int(status)})
            )
            if len(chunk) == PUBLISH_CHUNK:
                sent += len(chunk)
                await producer.send_batch(stream.queue_name, chunk, on_publish_confirm=on_confirm)
                chunk = []
        if chunk:
            sent += len(chunk)
            await producer.send_batch(stream.queue_name, chunk, on_publish_confirm=on_confirm)
        if sent:
            await asyncio.wait_for(all_confirmed.wait(), CONFIRM_TIMEOUT_S)
    if failed:
        raise RuntimeError(f"the broker refused {len(failed)} of {sent} messages")
    return confirmed


@dataclass
class FolderReport:
    published: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # "path: why" for pairs not sendable


def _boxes(text: str) -> list[tuple[int, float, float, float, float]] | None:
    """Boxes of a label as the platform holds them; None when the text is not boxes at all."""
    boxes = []
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        try:
            class_id, *coords = int(fields[0]), *map(float, fields[1:])
        except ValueError:
            return None
        if len(coords) != 4:
            return None
        boxes.append((class_id, *coords))
    return boxes


def folder_messages(
    layout: AzaionLayout, email: str, report: FolderReport
) -> Iterator[tuple[bytes, AnnotationStatus]]:
    """Created messages for each pair under data/ (validator) and data-seed/ (operator)."""
    for folder, role in ((layout.data, Role.VALIDATOR), (layout.data_seed, Role.OPERATOR)):
        images = folder / IMAGES
        if not images.is_dir():
            continue
        for image in sorted(images.iterdir()):
            if not image.is_file():
                continue
            label = folder / LABELS / f"{image.stem}.txt"
            boxes = _boxes(label.read_text(errors="replace")) if label.is_file() else None
            if boxes is None:
                report.skipped.append(f"{image}: no label the platform could have sent")
                continue
            provenance = read_provenance(image)
            yield (
                encode_annotation(
                    name=image.stem,
                    image=image.read_bytes(),
                    label_boxes=boxes,
                    created_role=provenance.created_role
                    if provenance and provenance.created_role is not None
                    else role,
                    created_email=email,
                    source=provenance.source
                    if provenance and provenance.source is not None
                    else Source.MANUAL,
                    original_media_name=(provenance and provenance.original_media_name) or "",
                    time_ticks=int(provenance.time.total_seconds() * 10_000_000)
                    if provenance and provenance.time
                    else 0,
                    image_extension=image.suffix.lstrip(".") or "jpg",
                    created_date=provenance.created_date if provenance else None,
                ),
                AnnotationStatus.CREATED,
            )
            report.published[folder.name] = report.published.get(folder.name, 0) + 1


def publish_folder(root: Path, stream: StreamSettings, email: str) -> FolderReport:
    report = FolderReport()
    asyncio.run(publish(stream, folder_messages(AzaionLayout.under(root), email, report)))
    return report
