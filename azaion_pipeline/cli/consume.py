"""``azaion-pipeline consume``: apply Azaion's annotation stream to the Azaion root, exactly once.

Reads ``RABBITMQ_HOST``, ``RABBITMQ_PORT`` (streams, 5552), ``RABBITMQ_USER``,
``RABBITMQ_PASSWORD`` and ``RABBITMQ_QUEUE_NAME`` (default ``azaion-annotations``), and the
``AZAION_INTAKE_*`` batching and reconnect settings. Runs until SIGTERM/SIGINT (then seals,
stores its offset and exits 0), or with ``--until-idle`` until nothing arrived for that long.
Exits 3 when the broker stays unreachable past ``AZAION_INTAKE_BROKER_ABSENCE_LIMIT_S``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

EXIT_BROKER_ABSENT = 3
EXIT_NOT_DURABLE = 4


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "consume", help="consume the annotation stream into the Azaion root", description=__doc__
    )
    parser.add_argument(
        "--until-idle",
        type=float,
        metavar="SECONDS",
        help="exit 0 once no message has arrived for this long (batch use, tests)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from azaion_pipeline.lib.intake.batches import BatchLog
    from azaion_pipeline.lib.intake.consumer import (
        BrokerAbsent,
        IntakeConsumer,
        IntakeSettings,
        NotDurable,
        StreamSettings,
    )
    from azaion_pipeline.lib.intake.store import AnnotationStore
    from azaion_pipeline.lib.layout import AzaionLayout
    from azaion_pipeline.lib.settings import load_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("rstream").setLevel(logging.CRITICAL)  # its reconnect noise; ours logs
    settings = load_settings()
    layout = AzaionLayout.under(
        settings.root_dir, settings.data_dir, settings.data_seed_dir, settings.data_deleted_dir
    )
    intake = IntakeSettings()
    consumer = IntakeConsumer(
        AnnotationStore(layout, kill_mid_file=intake.kill_mid_file),
        BatchLog(layout),
        StreamSettings(),
        intake,
        until_idle_s=args.until_idle,
    )

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, consumer.stop)
        report = await consumer.run()
        print(
            f"consumed {report.consumed} messages in {report.batches} sealed batches "
            f"({report.reconnects} reconnects) into {layout.root}",
            flush=True,
        )

    try:
        asyncio.run(main())
    except BrokerAbsent as exc:
        logging.getLogger(__name__).error("%s; exiting so a supervisor restarts the consumer", exc)
        return EXIT_BROKER_ABSENT
    except NotDurable as exc:
        logging.getLogger(__name__).error("%s; its messages are replayed at the next start", exc)
        return EXIT_NOT_DURABLE
    return 0
