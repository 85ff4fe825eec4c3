"""Encryption and the split rule, against AZAION_FORMAT.md's definitions computed independently."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import os
import time

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from azaion_pipeline.lib import crypto
from azaion_pipeline.lib.parts import JoinedReader, encrypt_and_split, small_part_size


def b64_sha384(text: str) -> str:
    return base64.b64encode(hashlib.sha384(text.encode()).digest()).decode()


def test_key_strings_follow_the_format():
    hw = "CPU: X. GPU: Y. Memory: 1 kB. DriveSerial: Z"
    hw_hash = b64_sha384(f"Azaion_{hw}_%$$$)0_")
    assert crypto.hardware_hash(hw) == hw_hash
    assert crypto.api_key_string("a@b.c", "pw", hw) == b64_sha384(
        f"a@b.c-pw-{hw_hash}-#%@AzaionKey@%#---"
    )
    assert crypto.model_key_string("secret") == b64_sha384("secret")
    assert crypto.aes_key("k") == hashlib.sha256(b"k").digest()


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 4095, 1024 * 1024 + 3])
@pytest.mark.parametrize("chunk", [7, 16, 1024 * 1024])
def test_stream_roundtrip_and_layout(size, chunk):
    plain = os.urandom(size)
    out = io.BytesIO()
    crypto.encrypt_stream(io.BytesIO(plain), out, "key", chunk_size=chunk)
    blob = out.getvalue()
    assert len(blob) == crypto.encrypted_size(size)
    # IV ‖ AES-256-CBC(PKCS7(plain)) with key SHA-256(key string), decrypted by the library directly.
    decryptor = Cipher(
        algorithms.AES(hashlib.sha256(b"key").digest()), modes.CBC(blob[:16])
    ).decryptor()
    padded = decryptor.update(blob[16:]) + decryptor.finalize()
    assert padded[: -padded[-1]] == plain and 1 <= padded[-1] <= 16
    back = io.BytesIO()
    crypto.decrypt_stream(io.BytesIO(blob), back, "key", chunk_size=chunk)
    assert back.getvalue() == plain


def test_fresh_iv_and_wrong_key():
    plain = os.urandom(1000)
    first, second = crypto.encrypt_bytes(plain, "k"), crypto.encrypt_bytes(plain, "k")
    assert first != second
    # Bad padding is the usual outcome; 1 in 256 wrong keys pads validly, but yields other bytes.
    with contextlib.suppress(crypto.DecryptionError):
        assert crypto.decrypt_bytes(first, "other") != plain
    with pytest.raises(crypto.DecryptionError, match="IV"):
        crypto.decrypt_bytes(b"short", "k")
    with pytest.raises(crypto.DecryptionError, match="whole number of blocks"):
        crypto.decrypt_bytes(first[:-1], "k")


def test_ten_megabytes_within_azaions_bar():
    plain = os.urandom(10 * 1024 * 1024)
    started = time.perf_counter()
    crypto.encrypt_bytes(plain, "k")
    assert time.perf_counter() - started <= 5.0


@pytest.mark.parametrize(
    ("encrypted", "small"),
    [(32, 6), (15_360, 3072), (15_359, 3071), (100_000, 3072), (10**9, 3072)],
)
def test_small_part_rule(encrypted, small):
    assert small_part_size(encrypted) == small
    assert small_part_size(encrypted) == min(3 * 1024, int(0.2 * encrypted))


@pytest.mark.parametrize("size", [0, 100, 20_000, 3 * 1024 * 1024 + 5])
def test_encrypt_and_split_parts_concatenate_to_the_blob(tmp_path, size):
    source = tmp_path / "model.onnx"
    source.write_bytes(os.urandom(size))
    small, big = tmp_path / "m.small", tmp_path / "m.big"
    result = encrypt_and_split(source, small, big, "key", chunk_size=4096)
    blob = small.read_bytes() + big.read_bytes()
    assert result.small.size == small_part_size(len(blob)) == small.stat().st_size
    assert result.encrypted_size == len(blob) == crypto.encrypted_size(size)
    assert result.big.sha256 == hashlib.sha256(big.read_bytes()).hexdigest()
    assert result.plaintext.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    joined = io.BytesIO()
    with open(big, "rb") as big_file:
        crypto.decrypt_stream(JoinedReader(small.read_bytes(), big_file), joined, "key", 1000)
    assert joined.getvalue() == source.read_bytes()
