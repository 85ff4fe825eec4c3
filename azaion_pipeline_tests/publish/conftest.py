"""Shared fixtures: the real local stack (reference API + SeaweedFS S3 over HTTP), fault injection, exports."""

from __future__ import annotations

import contextlib
import shutil
import socket
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from azaion_pipeline.devserver.stack import running
from azaion_pipeline.lib.api_client import AzaionApiClient
from azaion_pipeline.lib.cdn import MIB, CdnStore
from azaion_pipeline.lib.s3 import s3_client


class FaultInjector:
    """ASGI wrapper: answers chosen paths with an error status, a set number of times or forever."""

    def __init__(self):
        self._rules: list[list] = []  # [path prefix, status, remaining (None = forever), headers]
        self.hits = 0

    def fail(self, prefix: str, status: int, times: int | None = None, headers=()) -> None:
        self._rules.append([prefix, status, times, list(headers)])

    def clear(self) -> None:
        self._rules.clear()
        self.hits = 0

    def wrap(self, app):
        async def wrapped(scope, receive, send):
            if scope["type"] == "http":
                for rule in self._rules:
                    prefix, status, remaining, headers = rule
                    if scope["path"].startswith(prefix) and remaining != 0:
                        if remaining is not None:
                            rule[2] -= 1
                        self.hits += 1
                        body = b'{"detail":"injected fault"}'
                        await send(
                            {
                                "type": "http.response.start",
                                "status": status,
                                "headers": [(b"content-type", b"application/json"), *headers],
                            }
                        )
                        await send({"type": "http.response.body", "body": body})
                        return
            await app(scope, receive, send)

        return wrapped


@pytest.fixture(scope="session")
def faults() -> FaultInjector:
    return FaultInjector()


@pytest.fixture(scope="session")
def stack(tmp_path_factory, faults) -> Iterator[dict[str, str]]:
    with running(tmp_path_factory.mktemp("devstack"), wrap_api=faults.wrap) as env:
        yield env


@pytest.fixture
def injected(faults) -> Iterator[FaultInjector]:
    faults.clear()
    yield faults
    faults.clear()


@pytest.fixture
def stack_env(stack, monkeypatch) -> dict[str, str]:
    """The stack's variables in os.environ, as the resources and CLIs read them."""
    for name, value in stack.items():
        monkeypatch.setenv(name, value)
    return stack


def api_client(env: dict[str, str], **kwargs) -> AzaionApiClient:
    kwargs.setdefault("backoff_s", 0.01)
    return AzaionApiClient(
        env["AZAION_API_URL"], env["AZAION_API_EMAIL"], env["AZAION_API_PASSWORD"], **kwargs
    )


def admin_client(env: dict[str, str], **kwargs) -> AzaionApiClient:
    """The stack's API admin: lists and deletes stored files."""
    kwargs.setdefault("backoff_s", 0.01)
    return AzaionApiClient(
        env["AZAION_API_URL"],
        env["AZAION_API_ADMIN_EMAIL"],
        env["AZAION_API_ADMIN_PASSWORD"],
        **kwargs,
    )


def cdn_store(env: dict[str, str], role: str, endpoint: str | None = None, **kwargs) -> CdnStore:
    client_kwargs = {k: kwargs.pop(k) for k in ("max_attempts",) if k in kwargs}
    client = s3_client(
        endpoint or env["AZAION_CDN_ENDPOINT"],
        env[f"AZAION_CDN_{role.upper()}_KEY"],
        env[f"AZAION_CDN_{role.upper()}_SECRET"],
        **client_kwargs,
    )
    kwargs.setdefault("part_size", 5 * MIB)
    kwargs.setdefault("multipart_threshold", 5 * MIB)
    return CdnStore(client, env["AZAION_CDN_BUCKET"], **kwargs)


class CuttingProxy:
    """TCP proxy to the S3 server that kills connections once they carried ``cut_after`` bytes upstream.

    ``cuts`` connections are killed (None: every one), the way a flaky network drops an upload.
    """

    def __init__(self, target: tuple[str, int], cut_after: int, cuts: int | None = 1):
        self.target, self.cut_after, self.cuts_left = target, cut_after, cuts
        self.cut = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _should_cut(self) -> bool:
        with self._lock:
            if self.cuts_left == 0:
                return False
            if self.cuts_left is not None:
                self.cuts_left -= 1
            self.cut += 1
            return True

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, upstream: bool) -> None:
        sent = 0
        try:
            while data := src.recv(65536):
                sent += len(data)
                if upstream and sent > self.cut_after and self._should_cut():
                    break
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self._listener.close()


@pytest.fixture(scope="session")
def exports(tmp_path_factory) -> dict[str, Path]:
    """An untrained yolo11n (from yaml, no download) and its real ONNX and CoreML exports at 64 px,
    under the file names the pipeline's exports have (the names clients ask for)."""
    from ultralytics import YOLO

    folder = tmp_path_factory.mktemp("exports")
    weights = folder / "best.pt"
    YOLO("yolo11n.yaml").save(str(weights))
    model = YOLO(str(weights))
    onnx = Path(model.export(format="onnx", imgsz=64, simplify=False, verbose=False))
    onnx = onnx.rename(folder / "azaion.onnx")
    mlpackage = Path(model.export(format="coreml", imgsz=64, verbose=False))
    coreml_zip = folder / "azaion.mlpackage.zip"
    with zipfile.ZipFile(coreml_zip, "w") as archive:
        for file in sorted(mlpackage.rglob("*")):
            archive.write(file, file.relative_to(mlpackage.parent))
    shutil.rmtree(mlpackage)
    return {"weights": weights, "onnx": onnx, "coreml": coreml_zip}
