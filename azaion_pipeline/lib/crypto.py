"""Azaion-compatible encryption (AZAION_FORMAT.md), streamed so memory stays bounded.

Output format: a fresh random 16-byte IV ‖ AES-256-CBC ciphertext with PKCS7 padding.
The AES key is SHA-256 of a UTF-8 *key string*; key strings are base64(SHA-384(text)).
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
from typing import BinaryIO

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK_BYTES = 16
IV_BYTES = 16
CHUNK_BYTES = 1024 * 1024


class DecryptionError(ValueError):
    """The ciphertext is malformed or the key is wrong."""


def key_string(text: str) -> str:
    return base64.b64encode(hashlib.sha384(text.encode()).digest()).decode()


def hardware_hash(hardware: str) -> str:
    return key_string(f"Azaion_{hardware}_%$$$)0_")


def api_key_string(email: str, password: str, hardware: str) -> str:
    """The per-user + per-machine key the API encrypts ``/resources/get`` answers with."""
    return key_string(f"{email}-{password}-{hardware_hash(hardware)}-#%@AzaionKey@%#---")


def model_key_string(secret: str) -> str:
    """Azaion hard-codes this secret in source; ours comes from the environment only."""
    return key_string(secret)


def aes_key(key_str: str) -> bytes:
    return hashlib.sha256(key_str.encode()).digest()


def encrypted_size(plain_size: int) -> int:
    """IV + plaintext padded up to the next whole block (PKCS7 always adds 1..16 bytes)."""
    return IV_BYTES + (plain_size // BLOCK_BYTES + 1) * BLOCK_BYTES


def encrypt_stream(
    src: BinaryIO, dst: BinaryIO, key_str: str, chunk_size: int = CHUNK_BYTES
) -> None:
    iv = os.urandom(IV_BYTES)
    encryptor = Cipher(algorithms.AES(aes_key(key_str)), modes.CBC(iv)).encryptor()
    padder = padding.PKCS7(BLOCK_BYTES * 8).padder()
    dst.write(iv)
    while chunk := src.read(chunk_size):
        dst.write(encryptor.update(padder.update(chunk)))
    dst.write(encryptor.update(padder.finalize()) + encryptor.finalize())


def decrypt_stream(
    src: BinaryIO, dst: BinaryIO, key_str: str, chunk_size: int = CHUNK_BYTES
) -> None:
    """Raises DecryptionError on a short input or bad padding (almost always a wrong key)."""
    iv = src.read(IV_BYTES)
    if len(iv) != IV_BYTES:
        raise DecryptionError("ciphertext is shorter than its 16-byte IV")
    decryptor = Cipher(algorithms.AES(aes_key(key_str)), modes.CBC(iv)).decryptor()
    unpadder = padding.PKCS7(BLOCK_BYTES * 8).unpadder()
    total = 0
    while chunk := src.read(chunk_size):
        total += len(chunk)
        dst.write(unpadder.update(decryptor.update(chunk)))
    if total == 0 or total % BLOCK_BYTES:
        raise DecryptionError(f"ciphertext body of {total} bytes is not a whole number of blocks")
    try:
        dst.write(unpadder.update(decryptor.finalize()) + unpadder.finalize())
    except ValueError as exc:
        raise DecryptionError("bad padding after decryption: wrong key or corrupted data") from exc


def encrypt_bytes(data: bytes, key_str: str) -> bytes:
    out = io.BytesIO()
    encrypt_stream(io.BytesIO(data), out, key_str)
    return out.getvalue()


def decrypt_bytes(data: bytes, key_str: str) -> bytes:
    out = io.BytesIO()
    decrypt_stream(io.BytesIO(data), out, key_str)
    return out.getvalue()
