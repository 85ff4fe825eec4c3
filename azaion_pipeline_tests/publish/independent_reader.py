"""A second, independent Azaion client written from AZAION_FORMAT.md alone: no project imports.

If our publisher drifted from the format, this reader (like Azaion's own clients) would fail.
"""

from __future__ import annotations

import base64
import hashlib

import boto3
import requests
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


def key_from_text(text: str) -> bytes:
    key_string = base64.b64encode(hashlib.sha384(text.encode()).digest()).decode()
    return hashlib.sha256(key_string.encode()).digest()


def decrypt(blob: bytes, key: bytes) -> bytes:
    decryptor = Cipher(algorithms.AES(key), modes.CBC(blob[:16])).decryptor()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(decryptor.update(blob[16:]) + decryptor.finalize()) + unpadder.finalize()


def load_model(
    *,
    api_url: str,
    email: str,
    password: str,
    hardware: str,
    folder: str,
    small_name: str,
    s3_endpoint: str,
    s3_key: str,
    s3_secret: str,
    bucket: str,
    big_key: str,
    model_secret: str,
) -> bytes:
    token = requests.post(
        f"{api_url}/login", json={"email": email, "password": password}, timeout=10
    )
    headers = {"Authorization": f"Bearer {token.json()['token']}"}
    answer = requests.post(
        f"{api_url}/resources/get/{folder}",
        json={"filename": small_name, "hardware": hardware, "password": password},
        headers=headers,
        timeout=10,
    )
    answer.raise_for_status()
    hw_hash = base64.b64encode(
        hashlib.sha384(f"Azaion_{hardware}_%$$$)0_".encode()).digest()
    ).decode()
    small = decrypt(
        answer.content, key_from_text(f"{email}-{password}-{hw_hash}-#%@AzaionKey@%#---")
    )
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id=s3_key,
        aws_secret_access_key=s3_secret,
        region_name="us-east-1",
    )
    big = s3.get_object(Bucket=bucket, Key=big_key)["Body"].read()
    return decrypt(small + big, key_from_text(model_secret))
