"""Hardware string from a fake procfs/sysfs, and the signed manifest's tamper detection."""

from __future__ import annotations

import pytest

from azaion_pipeline.lib import hardware
from azaion_pipeline.lib.parts import Digest, SplitResult
from azaion_pipeline.lib.release_manifest import (
    ArtifactManifest,
    ManifestError,
    generate_signing_key,
    public_key_text,
    sign_manifest,
    verify_manifest,
)


def test_hardware_string_from_files(tmp_path):
    proc, block = tmp_path / "proc", tmp_path / "block"
    (proc / "driver/nvidia/gpus/0000:01:00.0").mkdir(parents=True)
    (proc / "cpuinfo").write_text("processor\t: 0\nmodel name\t: AMD Ryzen 9 7950X\n")
    (proc / "meminfo").write_text("MemTotal:       65536000 kB\nMemFree: 1 kB\n")
    (proc / "driver/nvidia/gpus/0000:01:00.0/information").write_text("Model: \t NVIDIA RTX 4090\n")
    (block / "loop0").mkdir(parents=True)
    (block / "loop0/serial").write_text("ignored")
    (block / "nvme0n1/device").mkdir(parents=True)
    (block / "nvme0n1/device/serial").write_text("S5GXNX0T123456  \n")
    assert hardware.format_hardware(
        hardware.cpu_name(proc),
        hardware.gpu_names(proc),
        hardware.memory_total(proc),
        hardware.drive_serial(block),
    ) == (
        "CPU: AMD Ryzen 9 7950X. GPU: NVIDIA RTX 4090. Memory: 65536000 kB. "
        "DriveSerial: S5GXNX0T123456"
    )


def test_hardware_string_of_this_machine_is_cached():
    assert hardware.hardware_string() is hardware.hardware_string()
    assert hardware.hardware_string().startswith("CPU: ")


def manifest() -> ArtifactManifest:
    digest = Digest(10, "a" * 64)
    return ArtifactManifest.describe(
        SplitResult(digest, 48, digest, digest),
        model_name="azaion",
        version="v1",
        model_version="m1",
        format="onnx",
        file_name="azaion.onnx",
    )


def test_signature_verifies_and_detects_tampering():
    private, public = generate_signing_key()
    assert public_key_text(private) == public
    data, signature = sign_manifest(manifest(), private)
    verified = verify_manifest(data, signature, public)
    assert verified.canonical_bytes() == data and verified.file_name == "azaion.onnx"
    with pytest.raises(ManifestError, match="altered"):
        verify_manifest(data.replace(b'"v1"', b'"v2"'), signature, public)
    with pytest.raises(ManifestError, match="altered"):
        verify_manifest(data, signature, generate_signing_key()[1])
    with pytest.raises(ManifestError, match="not a valid Ed25519"):
        sign_manifest(manifest(), "not-a-key")
