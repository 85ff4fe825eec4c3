"""The long-running consumer of Azaion's annotation stream (rstream), exactly once onto disk.

Each message is decoded, checked and applied to the Azaion root as it arrives (``store``);
bad ones become dead letters and the stream moves on. Every ``batch_messages`` messages or
``batch_seconds`` after a batch opened, the batch is sealed: the files are flushed, the batch
manifest is written, and only then is the stream offset stored on the server under the
consumer name. The flush (one ``syncfs`` per file system: a group commit) runs in a thread
while the next batch is applied; batches seal in order. A restart resumes at the message after
the stored offset; messages applied but not yet sealed come again and are skipped by the store
(their annotations carry the offset). A flush that fails stops the consumer (``NotDurable``):
nothing of that batch was stored, so the restart replays it.

A lost broker is retried with exponential backoff; if it stays away longer than
``broker_absence_limit_s`` the consumer exits non-zero, so a supervisor restarts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import rstream.connection
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from rstream import (
    AMQPMessage,
    Consumer,
    ConsumerOffsetSpecification,
    MessageContext,
    OffsetType,
    amqp_decoder,
)
from rstream.client import BrokerResolutionMaxRetryError
from rstream.connection import ConnectionClosed
from rstream.exceptions import ClientError, OffsetNotFound, ServerError
from rstream.recovery import BackOffRecoveryStrategy

from azaion_pipeline.lib.intake.batches import BatchLog, BatchTally
from azaion_pipeline.lib.intake.messages import (
    STATUS_PROPERTY,
    AnnotationBulkMessage,
    DeadLetter,
    Message,
    decode,
)
from azaion_pipeline.lib.intake.store import AnnotationStore, Applied, Effect

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 5.0
PREFETCH_MESSAGES = 256  # delivered but not yet applied; bounds memory with large images
EMPTY_STREAM_WAIT_S = 2.0  # how long stream_lag waits for the last chunk of a stream
APPLY_CHUNK = 32  # messages applied per hop to the writer threads
WRITER_THREADS = 4
# rstream reads its socket 256 bytes at a time: 2,000 messages of 200 KB cost ~1.7M Python
# iterations, most of the reader's CPU. Larger reads yield the same frames for far less.
SOCKET_READ_BYTES = 64 * 1024


def read_socket_in_large_pieces() -> None:
    """Raise rstream's socket read size (a module setting, read on every call) for this process."""
    rstream.connection.CHUNK_SIZE = max(rstream.connection.CHUNK_SIZE, SOCKET_READ_BYTES)


class StreamSettings(BaseSettings):
    """Azaion's own broker settings, under Azaion's names."""

    model_config = SettingsConfigDict(env_prefix="RABBITMQ_", extra="ignore")

    host: str = Field(default="localhost", description="RABBITMQ_HOST")
    port: int = Field(default=5552, gt=0, lt=65536, description="RABBITMQ_PORT (streams)")
    user: str = Field(default="", description="RABBITMQ_USER")
    password: SecretStr = Field(default=SecretStr(""), description="RABBITMQ_PASSWORD")
    queue_name: str = Field(default="azaion-annotations", description="RABBITMQ_QUEUE_NAME")

    def client_kwargs(self) -> dict:
        return {
            "host": self.host,
            "port": self.port,
            "username": self.user,
            "password": self.password.get_secret_value(),
        }


class IntakeSettings(BaseSettings):
    """How the consumer batches and how long it waits for a lost broker."""

    model_config = SettingsConfigDict(env_prefix="AZAION_INTAKE_", extra="ignore")

    consumer_name: str = Field(
        default="azaion-pipeline-intake",
        min_length=1,
        description="Name the stream offset is stored under on the server.",
    )
    batch_messages: int = Field(default=500, ge=1, description="Seal after this many messages.")
    batch_seconds: float = Field(
        default=60.0,
        gt=0,
        # Bounds the replay after a crash and the partitions a trickle creates (1/minute).
        description="Seal this long after a batch's first message.",
    )
    broker_absence_limit_s: float = Field(
        default=300.0, gt=0, description="Exit non-zero when the broker stays away this long."
    )
    reconnect_max_backoff_s: float = Field(
        default=30.0, gt=0, description="Longest wait between reconnection attempts."
    )
    kill_mid_file: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Tests only: write half of file number N, then SIGKILL this process "
            "(a crash in the middle of a write)."
        ),
    )


class BrokerAbsent(RuntimeError):
    pass


class NotDurable(RuntimeError):
    """The files of a batch could not be flushed; its offset was not stored."""


class _ConnectionLost(Exception):
    pass


# What a lost, restarting or unreachable broker looks like to the client.
LINK_ERRORS = (
    _ConnectionLost,
    ConnectionClosed,
    BrokerResolutionMaxRetryError,
    OSError,
    EOFError,
    ServerError,
    ClientError,
)


@dataclass
class ConsumeReport:
    consumed: int = 0
    batches: int = 0
    reconnects: int = 0


class IntakeConsumer:
    def __init__(
        self,
        store: AnnotationStore,
        batches: BatchLog,
        stream: StreamSettings,
        settings: IntakeSettings,
        until_idle_s: float | None = None,
        on_batch: Callable[[str], None] | None = None,
    ):
        self.store = store
        self.batches = batches
        self.stream = stream
        self.settings = settings
        self.until_idle_s = until_idle_s
        self.on_batch = on_batch
        self.report = ConsumeReport()
        self._stop = asyncio.Event()
        self._tally = BatchTally()
        self._batch_opened = 0.0
        self._next_offset: int | None = None  # after the last applied message
        self._unstored_offset: int | None = None  # sealed, not yet stored on the server
        self._flushing: _Flush | None = None  # a closed batch whose files are being flushed
        self._last_arrival = time.monotonic()
        self._connected = False
        self._writers: ThreadPoolExecutor | None = None  # set while run() runs

    def stop(self) -> None:
        """Finish the message in hand, seal, store the offset and return (SIGTERM)."""
        self._stop.set()

    async def run(self) -> ConsumeReport:
        read_socket_in_large_pieces()
        self.store.prepare()
        self.batches.prepare()
        with ThreadPoolExecutor(WRITER_THREADS, thread_name_prefix="intake-writer") as writers:
            self._writers = writers
            return await self._run()

    async def _run(self) -> ConsumeReport:
        absent_since: float | None = None
        backoff = 0.5
        while not self._stop.is_set():
            try:
                await self._session()
                break
            except LINK_ERRORS as exc:
                problem = f"{type(exc).__name__} {exc}".strip()
            now = time.monotonic()
            if self._connected:  # the link was up until now: a new outage starts
                self._connected, absent_since, backoff = False, now, 0.5
            absent_since = absent_since or now
            if now - absent_since > self.settings.broker_absence_limit_s:
                raise BrokerAbsent(
                    f"broker {self.stream.host}:{self.stream.port} unreachable for "
                    f"{now - absent_since:.0f}s ({problem})"
                )
            self.report.reconnects += 1
            wait = min(backoff, self.settings.reconnect_max_backoff_s) * random.uniform(0.8, 1.2)
            log.warning("stream connection lost (%s); reconnecting in %.1fs", problem, wait)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), wait)
            backoff *= 2
        if self._tally.consumed or self._flushing or self._unstored_offset is not None:
            log.warning(
                "stopped with a batch not stored on the server; it is replayed at next start"
            )
        return self.report

    async def _session(self) -> None:
        """One connection; returns when stopped or idle, raises when the link is lost."""
        lost = asyncio.Event()
        consumer = Consumer(
            **self.stream.client_kwargs(),
            connection_name=self.settings.consumer_name,
            on_close_handler=lambda _info: lost.set(),
            # rstream's own recovery resubscribes from its read position; ours resumes from
            # what is applied, so it stays off.
            recovery_strategy=BackOffRecoveryStrategy(False),
        )
        queue: asyncio.Queue[tuple[int, AMQPMessage]] = asyncio.Queue(PREFETCH_MESSAGES)

        async def on_message(message: AMQPMessage, context: MessageContext) -> None:
            await queue.put((context.offset, message))

        stream, name = self.stream.queue_name, self.settings.consumer_name
        try:
            await consumer.start()
            if not await consumer.stream_exists(stream):
                # Normally the platform declares it; creating it lets either side start first.
                await consumer.create_stream(stream, exists_ok=True)
            await self._finish_seal(consumer)  # what a lost connection left unstored
            if self._next_offset is None:
                try:
                    self._next_offset = await consumer.query_offset(stream, name) + 1
                except OffsetNotFound:
                    self._next_offset = 0
            await consumer.subscribe(
                stream,
                on_message,
                decoder=amqp_decoder,
                offset_specification=ConsumerOffsetSpecification(
                    OffsetType.OFFSET, self._next_offset
                ),
                subscriber_name=name,
            )
            # Up only once subscribed: a broker that accepts logins but refuses the stream
            # (permissions, a stream that stays unavailable) counts toward the absence limit.
            self._connected = True
            log.info("consuming %s as %s from offset %d", stream, name, self._next_offset)
            while not self._stop.is_set():
                if lost.is_set():
                    raise _ConnectionLost("connection closed by the broker")
                if self._flushing is not None and self._flushing.done.done():
                    await self._finish_seal(consumer)
                first = await self._next_arrival(queue)
                if first is None:
                    if self._batch_due():
                        await self._seal(consumer)
                    if self._idle():
                        break
                    continue
                self._last_arrival = time.monotonic()
                arrived = [first]
                room = min(APPLY_CHUNK, self.settings.batch_messages - self._tally.consumed)
                while len(arrived) < room and not queue.empty():
                    arrived.append(queue.get_nowait())
                # Files are written off the event loop, so rstream keeps reading meanwhile.
                await asyncio.to_thread(self._apply_in_order, arrived)
                if self._tally.consumed >= self.settings.batch_messages or self._batch_due():
                    await self._seal(consumer)
            await self._seal(consumer)
            await self._finish_seal(consumer)
        finally:
            try:
                await asyncio.wait_for(consumer.close(), CLOSE_TIMEOUT_S)
            except Exception as exc:  # closing a dead connection: nothing left to save
                log.debug("closing the stream consumer: %s", exc)

    async def _next_arrival(
        self, queue: asyncio.Queue[tuple[int, AMQPMessage]]
    ) -> tuple[int, AMQPMessage] | None:
        """The next message; None after ``_wait_s()``, or as soon as a flush completes (its
        batch's offset is then stored without waiting for the next message)."""
        getter = asyncio.ensure_future(queue.get())
        waits = {getter} if self._flushing is None else {getter, self._flushing.done}
        await asyncio.wait(waits, timeout=self._wait_s(), return_when=asyncio.FIRST_COMPLETED)
        if getter.done():
            return getter.result()
        getter.cancel()  # not done: cancelling takes nothing off the queue
        return None

    def _wait_s(self) -> float:
        waits = [0.5]
        if self._tally.consumed:
            waits.append(self._batch_opened + self.settings.batch_seconds - time.monotonic())
        if self.until_idle_s is not None:
            waits.append(self._last_arrival + self.until_idle_s - time.monotonic())
        return max(0.01, min(waits))

    def _batch_due(self) -> bool:
        return bool(self._tally.consumed) and (
            time.monotonic() - self._batch_opened >= self.settings.batch_seconds
        )

    def _idle(self) -> bool:
        return (
            self.until_idle_s is not None
            and time.monotonic() - self._last_arrival >= self.until_idle_s
        )

    def _apply_in_order(self, arrived: list[tuple[int, AMQPMessage]]) -> None:
        """Apply a chunk with the effect of applying it message by message.

        Consecutive Created/Edited messages naming different annotations touch different files,
        so each such run is written by several threads at once (file creation dominates).
        """
        items = [
            _Arrival(offset, _body(message), _property(message, STATUS_PROPERTY))
            for offset, message in arrived
            if offset >= self._next_offset  # rstream delivers whole chunks from their start
        ]
        if not items:
            return
        for item in items:
            try:
                item.message = decode(item.body, item.status)
            except DeadLetter as error:
                item.outcome = error
        for run in _independent_runs(items):
            if len(run) == 1:
                self._effect(run[0])
            else:
                list(self._writers.map(self._effect, run))
        for item in items:
            self._record(item)
        self._next_offset = items[-1].offset + 1

    def _effect(self, item: _Arrival) -> None:
        if item.outcome is None:
            try:
                item.outcome = self.store.apply(item.message, item.offset)
            except DeadLetter as error:
                item.outcome = error

    def _record(self, item: _Arrival) -> None:
        if not self._tally.consumed:
            self._batch_opened = time.monotonic()
        outcome = item.outcome
        error = outcome if isinstance(outcome, DeadLetter) else outcome.dead_letter
        if error is not None:
            self.store.dead_letter(item.offset, item.body, error, item.status)
            log.warning("offset %d dead-lettered: %s", item.offset, error)
        effect = Effect.DEAD_LETTERED if isinstance(outcome, DeadLetter) else outcome.effect
        self._tally.count(item.offset, item.message, effect, error is not None)
        self.report.consumed += 1

    async def _seal(self, consumer: Consumer) -> None:
        """Close the open batch and start flushing it; the previous batch seals first."""
        if not self._tally.consumed:
            return
        await self._finish_seal(consumer)
        self._flushing = _Flush(
            self._tally, asyncio.ensure_future(asyncio.to_thread(self.store.sync))
        )
        self._tally = BatchTally()

    async def _finish_seal(self, consumer: Consumer) -> None:
        """Once the closed batch is flushed: its manifest, then its offset on the server."""
        if self._flushing is not None:
            flushing = self._flushing
            try:
                await flushing.done
            except OSError as exc:
                raise NotDurable(f"flushing batch {flushing.tally.first_offset}..: {exc}") from exc
            manifest = flushing.tally.manifest(self.stream.queue_name, self.settings.consumer_name)
            await asyncio.to_thread(self.batches.seal, manifest, flushing.tally.names)
            self._flushing = None
            self._unstored_offset = manifest.last_offset
            self.report.batches += 1
            log.info(
                "sealed batch %s: %d consumed, %d written, %d moved, %d dead-lettered, %d skipped",
                manifest.batch_id,
                manifest.consumed,
                manifest.written,
                manifest.moved,
                manifest.dead_lettered,
                manifest.skipped,
            )
            if self.on_batch is not None:
                self.on_batch(manifest.batch_id)
        await self._store_sealed_offset(consumer)

    async def _store_sealed_offset(self, consumer: Consumer) -> None:
        if self._unstored_offset is None:
            return
        await consumer.store_offset(
            self.stream.queue_name, self.settings.consumer_name, self._unstored_offset
        )
        self._unstored_offset = None


@dataclass
class _Flush:
    tally: BatchTally
    done: asyncio.Future  # the syncfs thread


@dataclass
class _Arrival:
    offset: int
    body: bytes
    status: object  # the AnnotationStatus property as sent
    message: Message | None = None
    outcome: Applied | DeadLetter | None = None


def _independent_runs(items: list[_Arrival]) -> Iterator[list[_Arrival]]:
    """Consecutive items whose effects commute: Created/Edited of distinct names (or nothing
    to apply). A bulk message, or a name seen again, starts a new run."""
    run: list[_Arrival] = []
    names: set[str] = set()
    for item in items:
        message = item.message
        if isinstance(message, AnnotationBulkMessage) or (
            message is not None and message.name in names
        ):
            if run:
                yield run
            run, names = [], set()
        run.append(item)
        if isinstance(message, AnnotationBulkMessage):
            yield run
            run = []
        elif message is not None:
            names.add(message.name)
    if run:
        yield run


def _body(message: AMQPMessage) -> bytes:
    body = message.body
    if isinstance(body, list):  # several AMQP data sections
        return b"".join(bytes(part) for part in body)
    return bytes(body) if body is not None else b""


def _property(message: AMQPMessage, name: str) -> object:
    properties = message.application_properties or {}
    for key, value in properties.items():
        if (key.decode() if isinstance(key, bytes) else key) == name:
            return value
    return None


async def stream_lag(stream: StreamSettings, consumer_name: str, timeout_s: float = 10.0) -> int:
    """The last offset on the server minus the offset stored under ``consumer_name``.

    Stored offsets take stream offsets too, so this counts offsets, not strictly messages.
    RabbitMQ 3.10 has no stream-statistics command: the last offset is read by subscribing at
    the stream's last chunk. Raises ``TimeoutError`` past ``timeout_s`` (an unreachable host).
    """
    return await asyncio.wait_for(_stream_lag(stream, consumer_name), timeout_s)


async def _stream_lag(stream: StreamSettings, consumer_name: str) -> int:
    last = -1
    delivered = asyncio.Event()

    async def on_message(_message: bytes, context: MessageContext) -> None:
        nonlocal last
        last = max(last, context.offset)
        delivered.set()

    async with Consumer(**stream.client_kwargs(), connection_name="azaion-intake-lag") as client:
        if not await client.stream_exists(stream.queue_name):
            return 0
        try:
            stored = await client.query_offset(stream.queue_name, consumer_name)
        except OffsetNotFound:
            stored = -1
        await client.subscribe(
            stream.queue_name,
            on_message,
            offset_specification=ConsumerOffsetSpecification(OffsetType.LAST),
        )
        # rstream runs the callback for every message of a chunk without yielding, so the
        # whole last chunk has been seen once the first message is. An empty stream sends none.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(delivered.wait(), EMPTY_STREAM_WAIT_S)
    return max(0, last - stored)
