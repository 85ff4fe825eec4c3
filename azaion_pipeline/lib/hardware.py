"""This machine's hardware string in Azaion's format, read from procfs/sysfs (and NVML when installed).

``"CPU: {cpu}. GPU: {gpu}. Memory: {memory}. DriveSerial: {serial}"``. Azaion builds it with
shell commands; we read the same facts from files, so nothing is spawned and nothing can be injected.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

PROC = Path("/proc")
SYS_BLOCK = Path("/sys/block")
UNKNOWN = "Unknown"


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return ""


def cpu_name(proc: Path = PROC) -> str:
    for line in _read(proc / "cpuinfo").splitlines():
        key, _, value = line.partition(":")
        # "model name" on x86; ARM boards often only have "Hardware" or "Model".
        if key.strip() in ("model name", "Hardware", "Model") and value.strip():
            return value.strip()
    return UNKNOWN


def gpu_names(proc: Path = PROC) -> str:
    try:
        import pynvml  # nvidia-ml-py, optional

        pynvml.nvmlInit()
        try:
            names = [
                pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(i))
                for i in range(pynvml.nvmlDeviceGetCount())
            ]
        finally:
            pynvml.nvmlShutdown()
        return ", ".join(n.decode() if isinstance(n, bytes) else n for n in names) or UNKNOWN
    except Exception:  # no NVML library or no driver: fall back to the driver's procfs
        pass
    names = []
    for info in sorted((proc / "driver" / "nvidia" / "gpus").glob("*/information")):
        for line in _read(info).splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Model":
                names.append(value.strip())
    return ", ".join(names) or UNKNOWN


def memory_total(proc: Path = PROC) -> str:
    for line in _read(proc / "meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return line.split(":", 1)[1].strip()
    return UNKNOWN


def drive_serial(sys_block: Path = SYS_BLOCK) -> str:
    """Serial of the first physical disk that reports one; machine-id where none does (VMs)."""
    for disk in sorted(sys_block.glob("*")):
        if disk.name.startswith(("loop", "ram", "zram", "dm-", "md")):
            continue
        for candidate in (disk / "device" / "serial", disk / "serial", disk / "device" / "wwid"):
            if serial := _read(candidate):
                return serial
    return _read(Path("/etc/machine-id")) or UNKNOWN


def format_hardware(cpu: str, gpu: str, memory: str, serial: str) -> str:
    return f"CPU: {cpu}. GPU: {gpu}. Memory: {memory}. DriveSerial: {serial}"


@lru_cache(maxsize=1)
def hardware_string() -> str:
    """Cached: the facts do not change while a process runs. ``AZAION_HARDWARE`` overrides (tests, containers)."""
    if override := os.environ.get("AZAION_HARDWARE"):
        return override
    return format_hardware(cpu_name(), gpu_names(), memory_total(), drive_serial())
