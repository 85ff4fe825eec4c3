"""Azaion's routing, provenance and dead letters, through a real broker and the real consumer.

One stream carries every case; one consumer run applies it; the tests read the files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgpack
import pytest

from azaion_pipeline.lib.intake.batches import BatchLog
from azaion_pipeline.lib.intake.consumer import StreamSettings
from azaion_pipeline.lib.intake.messages import AnnotationStatus, Role, Source, encode_bulk
from azaion_pipeline.lib.intake.messages import encode_annotation as encode
from azaion_pipeline.lib.intake.provenance import read_provenance
from azaion_pipeline.lib.intake.store import read_dead_letters
from azaion_pipeline.lib.layout import AzaionLayout
from azaion_pipeline_tests.intake.conftest import consume, jpeg, manifests, send, stored_offset

CREATED, EDITED = AnnotationStatus.CREATED, AnnotationStatus.EDITED
VALIDATED, DELETED = AnnotationStatus.VALIDATED, AnnotationStatus.DELETED
BOX = [(3, 0.5, 0.5, 0.2, 0.1)]
EDITED_BOX = [(7, 0.25, 0.75, 0.1, 0.3)]
WHEN = datetime(2026, 5, 1, 12, 30, 15, tzinfo=UTC)


def created(name: str, role: int, **fields) -> tuple[bytes, AnnotationStatus]:
    fields.setdefault("image", jpeg(len(name)))
    fields.setdefault("label_boxes", BOX)
    body = encode(name=name, created_role=role, created_email="op@azaion.local", **fields)
    return body, CREATED


def edited(name: str, role: int, image: bytes = b"") -> tuple[bytes, AnnotationStatus]:
    body = encode(
        name=name,
        image=image,
        label_boxes=EDITED_BOX,
        created_role=role,
        created_email="val@azaion.local",
        status=EDITED,
    )
    return body, EDITED


@dataclass(frozen=True)
class Route:
    name: str
    area: str  # where the pair must end up
    label: list  # the boxes its label must hold


# name -> messages (in stream order) and where the pair ends up
ROUTES = [
    (Route("created-by-operator", "data-seed", BOX), [created("created-by-operator", Role.OPERATOR)]),
    (Route("created-by-companion", "data-seed", BOX), [created("created-by-companion", Role.COMPANION_PC)]),
    (Route("created-by-validator", "data", BOX), [created("created-by-validator", Role.VALIDATOR)]),
    (Route("created-by-admin", "data", BOX), [created("created-by-admin", Role.ADMIN)]),
    (Route("created-by-apiadmin", "data", BOX), [created("created-by-apiadmin", Role.API_ADMIN)]),
    (
        Route("edited-by-operator-stays-in-seed", "data-seed", EDITED_BOX),
        [created("edited-by-operator-stays-in-seed", Role.OPERATOR), edited("edited-by-operator-stays-in-seed", Role.OPERATOR)],
    ),
    (
        Route("edited-by-validator-moves-to-data", "data", EDITED_BOX),
        [created("edited-by-validator-moves-to-data", Role.OPERATOR), edited("edited-by-validator-moves-to-data", Role.VALIDATOR)],
    ),
    (
        Route("edited-by-operator-in-data", "data", EDITED_BOX),
        [created("edited-by-operator-in-data", Role.VALIDATOR), edited("edited-by-operator-in-data", Role.OPERATOR)],
    ),
    (
        Route("validated-moves-to-data", "data", BOX),
        [created("validated-moves-to-data", Role.OPERATOR), (encode_bulk(["validated-moves-to-data"]), VALIDATED)],
    ),
    (
        Route("deleted-from-data", "data_deleted", BOX),
        [created("deleted-from-data", Role.VALIDATOR), (encode_bulk(["deleted-from-data"]), DELETED)],
    ),
    (
        Route("deleted-from-seed", "data_deleted", BOX),
        [created("deleted-from-seed", Role.OPERATOR), (encode_bulk(["deleted-from-seed"]), DELETED)],
    ),
]  # fmt: skip

UNKNOWN_STATUS_BODY = created("unknown-status", Role.VALIDATOR)[0]
# reason -> (body, AnnotationStatus property); each is one message on the stream
DEAD_LETTERS = {
    "undecodable": (b"\xc1\x00", CREATED),
    "wrong_fields:count": (msgpack.packb(["a", "b", "c"]), CREATED),
    "wrong_fields:type": (
        msgpack.packb(msgpack.unpackb(created("x", 10)[0], timestamp=0)[:1] + [42] * 10),
        CREATED,
    ),
    "wrong_fields:detections": (created("bad-json", Role.VALIDATOR)[0].replace(b'[{"', b"[{{"), CREATED),
    "unknown_status": (UNKNOWN_STATUS_BODY, 99),
    "image_empty": (created("no-image", Role.VALIDATOR, image=b"")[0], CREATED),
    "image_undecodable": (created("not-an-image", Role.VALIDATOR, image=b"GIF89a but no")[0], CREATED),
    "unsafe_name": (created("../escape", Role.VALIDATOR)[0], CREATED),
    "detections_out_of_range": (
        created("too-wide", Role.VALIDATOR, label_boxes=[(1, 0.5, 0.5, 1.2, 0.1)])[0],
        CREATED,
    ),
    "unknown_name:validated": (encode_bulk(["never-created"]), VALIDATED),
    "unknown_name:deleted": (encode_bulk(["never-created-either"]), DELETED),
    "edit_of_missing": (edited("never-created-too", Role.VALIDATOR)[0], EDITED),
}  # fmt: skip

PROVENANCE_NAME = "with-provenance"
PROVENANCE_MESSAGE = created(
    PROVENANCE_NAME,
    Role.OPERATOR,
    source=Source.AI,
    original_media_name="flight-2026-05-01.mp4",
    time_ticks=12_345_678_900,  # 1234.5678900 s into the video
    created_date=WHEN,
)
LAST_NAME = "after-every-bad-message"


@pytest.fixture(scope="module")
def applied(rabbitmq, tmp_path_factory) -> tuple[Path, StreamSettings]:
    env = rabbitmq.env
    stream = StreamSettings(
        host=env["RABBITMQ_HOST"],
        port=int(env["RABBITMQ_PORT"]),
        user=env["RABBITMQ_USER"],
        password=env["RABBITMQ_PASSWORD"],
        queue_name="test-routing",
    )
    messages = [message for _, sent in ROUTES for message in sent]
    messages += [PROVENANCE_MESSAGE, *DEAD_LETTERS.values(), created(LAST_NAME, Role.ADMIN)]
    send(stream, messages)
    root = tmp_path_factory.mktemp("azaion")
    report = consume(stream, root, batch_messages=7)
    assert report.consumed == len(messages)
    return root, stream


def _where(root: Path, name: str) -> list[str]:
    return [
        area
        for area in ("data", "data-seed", "data_deleted")
        if (root / area / "labels" / f"{name}.txt").exists()
    ]


@pytest.mark.parametrize("route", [route for route, _ in ROUTES], ids=lambda r: r.name)
def test_each_status_and_role_routed(applied, route: Route):
    root, _ = applied
    assert _where(root, route.name) == [route.area]
    folder = root / route.area
    expected = "".join(f"{c} {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n" for c, x, y, w, h in route.label)
    assert (folder / "labels" / f"{route.name}.txt").read_text() == expected
    assert (folder / "images" / f"{route.name}.jpg").read_bytes() == jpeg(len(route.name))
    assert read_provenance(folder / "images" / f"{route.name}.jpg") is not None


def test_provenance_kept(applied):
    root, _ = applied
    provenance = read_provenance(root / "data-seed" / "labels" / f"{PROVENANCE_NAME}.txt")
    assert provenance is not None
    assert provenance.original_media_name == "flight-2026-05-01.mp4"
    assert provenance.time == timedelta(seconds=1234.56789)
    assert provenance.created_role == Role.OPERATOR
    assert provenance.created_email == "op@azaion.local"
    assert provenance.source == Source.AI
    assert provenance.created_date == WHEN
    on_disk = json.loads(
        (root / "data-seed" / "provenance" / f"{PROVENANCE_NAME}.json").read_text()
    )
    assert on_disk["originalMediaName"] == "flight-2026-05-01.mp4"
    assert on_disk["createdEmail"] == "op@azaion.local"


def test_each_dead_letter_reason(applied):
    root, _ = applied
    letters = read_dead_letters(AzaionLayout.under(root))
    first_bad = sum(len(sent) for _, sent in ROUTES) + 1
    assert [letter["reason"] for letter in letters] == [case.split(":")[0] for case in DEAD_LETTERS]
    for offset, (letter, (body, _)) in enumerate(
        zip(letters, DEAD_LETTERS.values(), strict=True), first_bad
    ):
        assert letter["offset"] == offset and letter["detail"]
        assert (root / "intake" / "dead-letter" / letter["message"]).read_bytes() == body
    # Nothing a bad message named was written anywhere.
    for name in ("no-image", "not-an-image", "too-wide", "never-created-too", "escape"):
        assert _where(root, name) == []


def test_bad_messages_never_block_the_stream(applied):
    root, stream = applied
    assert _where(root, LAST_NAME) == ["data"]
    total = sum(len(sent) for _, sent in ROUTES) + 1 + len(DEAD_LETTERS) + 1
    assert stored_offset(stream) == total - 1
    sealed = manifests(root)
    assert sum(m.consumed for m in sealed) == total
    assert sum(m.dead_lettered for m in sealed) == len(DEAD_LETTERS)
    assert [m.first_offset for m in sealed] == list(range(0, total, 7))
    # Counts per role and source only: no e-mail or name reaches a manifest.
    text = "".join(m.model_dump_json() for m in sealed)
    assert "azaion.local" not in text and PROVENANCE_NAME not in text
    assert sum(sum(m.by_role.values()) for m in sealed) == sum(m.written for m in sealed)
    # Beside each manifest, the annotation names its messages named (the dataset stage reads
    # those instead of listing the folders): every decodable one, applied or not.
    log = BatchLog(AzaionLayout.under(root))
    named = {name for m in sealed for name in log.names(m.batch_id)}
    assert {LAST_NAME, PROVENANCE_NAME, "never-created", "never-created-too"} <= named
    assert "../escape" not in named  # refused before it was decoded


def test_replaying_the_whole_stream_changes_nothing(applied, tmp_path):
    """A consumer under another name replays every message onto a copy: same files."""
    import shutil

    root, stream = applied
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    before = {
        p.relative_to(copy): p.read_bytes()
        for p in copy.rglob("*")
        if p.is_file() and "intake" not in p.parts
    }
    consume(stream, copy, consumer_name="replay-everything")
    after = {
        p.relative_to(copy): p.read_bytes()
        for p in copy.rglob("*")
        if p.is_file() and "intake" not in p.parts
    }
    assert after == before
    replay = manifests(copy)[-1]
    assert replay.written == 0 and replay.moved == 0
