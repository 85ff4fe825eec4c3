"""Automation settings as Dagster needs them (the values live in ``lib/settings.py``)."""

from __future__ import annotations

import dagster as dg

from azaion_pipeline.lib.settings import automation_settings


def sensor_status() -> dg.DefaultSensorStatus:
    running = automation_settings().automation_running
    return dg.DefaultSensorStatus.RUNNING if running else dg.DefaultSensorStatus.STOPPED


def schedule_status() -> dg.DefaultScheduleStatus:
    running = automation_settings().automation_running
    return dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED
