"""Dataset versions in the object store, content-addressed, and the node-local cache they sync into.

A host that built a version pushes it: every listed image and its label go to
``{prefix}objects/sha256/{ab}/{abcd...}`` (only objects the store lacks), then one manifest per
version, ``{prefix}versions/{version}.json``, written last, so a manifest in the store means all
its objects are there. A worker that cannot see the Azaion root pulls a version into its node
cache (objects keyed by sha256, only what it lacks, in parallel, verified, atomic) and
materialises it for ultralytics in the shape ``versions.build_version`` gives on the host:

    {cache}/objects/sha256/ab/abcd...                          the objects
    {cache}/pool/images/{pair}.jpg, pool/labels/{pair}.txt     hard links, shared by all versions
    {cache}/versions/{version}/{train,valid,test}.txt + data.yaml
    {cache}/versions/{version}/{split}/images -> pool/images   (labels alike)
    {cache}/versions/{version}/{split}/labels.cache            written from the manifest

Label caches work as on the host: ``labels_cache.write_labels_cache`` writes each split's cache
from what the manifest says (image width and height, label object), so ultralytics scans
nothing and the cache is exact for the bytes this version lists. The pool names a pair by
the hashes of both its objects (``{pair}``): ultralytics finds a label by its image's path,
so an image paired with an edited label needs a new name, and the host's names are unique
only within one augmentation store while the pool serves every version this node holds.

Weights and exports use the same objects (``put_file`` / ``fetch_file``), so a step on another
machine finds them by sha256.

Downloads are GETs of URLs the boto3 client presigns, sent through a urllib3 pool with the
client's retry budget: boto3 spends ~1 ms of CPU per ``get_object``, which caps a thread pool
on a small host; signing plus urllib3 costs about a third of that.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import urllib3
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field

from azaion_pipeline.lib.dataset.catalogue import Catalogue, list_line
from azaion_pipeline.lib.dataset.labels_cache import LabelEntry, write_labels_cache
from azaion_pipeline.lib.dataset.versions import (
    DATA_YAML,
    DatasetVersion,
    data_yaml_text,
    read_list,
)
from azaion_pipeline.lib.files import link_or_copy, write_atomic
from azaion_pipeline.lib.hashing import CHUNK, sha256_file, sha256_text
from azaion_pipeline.lib.layout import IMAGES, LABELS, SPLITS

# Parallel transfers of one sync: small objects are latency-bound, 32 in flight keep a loopback
# SeaweedFS busy (8 reach ~60% of the rate, 64 no more than 32).
DEFAULT_WORKERS = 32


class StoreError(RuntimeError):
    pass


class ManifestEntry(BaseModel):
    """One listed image and its label: where it sits, what bytes they hold, the image's size."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    split: Literal["train", "valid", "test"]
    name: str  # the image's file name in the version on the host
    image_sha256: str
    image_size: int
    label_sha256: str
    label_size: int
    width: int  # pixels, as the catalogue holds them: the label cache needs no decoding
    height: int

    @property
    def pair(self) -> str:
        """Names the pair by content: a new image or label byte gives a new name."""
        return sha256_text([self.image_sha256, self.label_sha256])[:32]

    @property
    def file(self) -> str:
        """The image's file name in a node's pool (the label's is ``{pair}.txt``)."""
        return f"{self.pair}{os.path.splitext(self.name)[1].lower()}"


class VersionManifest(BaseModel):
    """Everything a node needs to rebuild a version: its pairs and the data.yaml facts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str = Field(pattern=r"^\w[\w.-]*$")  # a folder name on the node, never a path
    names: dict[int, str]  # data.yaml ``names``; ``nc`` is their count
    entries: tuple[ManifestEntry, ...]

    def objects(self) -> dict[str, int]:
        """sha256 -> size of every object the version needs (shared bytes counted once)."""
        sizes: dict[str, int] = {}
        for entry in self.entries:
            sizes[entry.image_sha256] = entry.image_size
            sizes[entry.label_sha256] = entry.label_size
        return sizes


@dataclass(frozen=True)
class Transfer:
    """What one push or pull moved: objects needed, objects actually sent, and their bytes."""

    objects: int
    transferred: int
    bytes: int


class Listed(NamedTuple):
    """One image of a version on this host, with its size in pixels."""

    split: str
    image: Path
    width: int
    height: int


def label_path_of(image: Path) -> Path:
    """ultralytics' rule (img2label_paths): the last ``/images/`` becomes ``/labels/``, suffix .txt."""
    parts = list(image.parts)
    index = len(parts) - 1 - parts[::-1].index(IMAGES)
    parts[index] = LABELS
    return Path(*parts).with_suffix(".txt")


def build_manifest(
    version: str,
    names: dict[int, str],
    listed: Iterable[Listed],
    sha256_of: Callable[[Path], str] = sha256_file,
) -> tuple[VersionManifest, dict[str, Path]]:
    """The manifest of ``listed`` images (labels found the ultralytics way) and where each
    object's bytes are on this host."""
    entries, files = [], {}
    for split, image, width, height in listed:
        label = label_path_of(image)
        image_sha, label_sha = sha256_of(image), sha256_of(label)
        files[image_sha], files[label_sha] = image, label
        entries.append(
            ManifestEntry(
                split=split,
                name=image.name,
                image_sha256=image_sha,
                image_size=image.stat().st_size,
                label_sha256=label_sha,
                label_size=label.stat().st_size,
                width=width,
                height=height,
            )
        )
    return VersionManifest(version=version, names=names, entries=tuple(entries)), files


def version_manifest(dataset: DatasetVersion) -> tuple[VersionManifest, dict[str, Path]]:
    """The manifest of a version ``versions.build_version`` wrote: its list files, with
    image sizes from the catalogue (read from the image header for an output it forgot)."""
    listed = []
    with Catalogue(dataset.catalogue) as catalogue:
        for split in SPLITS:
            files = read_list(dataset.directory, split)
            sizes = {
                o.image: (o.width, o.height)
                for o in catalogue.outputs_named(dataset.settings_key, files)
            }
            for file in files:
                image = dataset.directory / split / IMAGES / file
                listed.append(Listed(split, image, *(sizes.get(file) or _pixels(image))))
    return build_manifest(dataset.version, dataset.class_names, listed)


def _pixels(image: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(image) as opened:  # the header only, as the catalogue measured it
        return opened.size


def _place(source: str, target: str) -> None:
    """Links an object into the pool. A pool name fixes its bytes, so a file already there
    (another worker of this node, or a sync cut short) is this one."""
    try:
        os.link(source, target)
    except FileExistsError:
        pass
    except OSError:
        link_or_copy(source, target)  # a file system without hard links


class NodeCache:
    """Objects by sha256 on this node's disk, and the versions materialised from them."""

    def __init__(self, root: Path | str):
        self.root = Path(root).absolute()

    def object_path(self, sha256: str) -> Path:
        return self.root / "objects" / "sha256" / sha256[:2] / sha256

    def has(self, sha256: str) -> bool:
        # Plain strings: this runs once per object of a version, pathlib would triple the cost.
        return os.path.exists(f"{self.root}/objects/sha256/{sha256[:2]}/{sha256}")

    def adopt(self, path: Path, sha256: str) -> None:
        """Registers a local file under its hash (a hard link: no bytes copied on one disk)."""
        target = self.object_path(sha256)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            link_or_copy(path, target)

    def write_verified(self, sha256: str, chunks: Iterable[bytes]) -> int:
        """Streams bytes into the cache; they land under their name only if the hash matches."""
        target = self.object_path(sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        digest, size = hashlib.sha256(), 0
        try:
            with open(partial, "wb") as f:
                for chunk in chunks:
                    digest.update(chunk)
                    size += len(chunk)
                    f.write(chunk)
            if digest.hexdigest() != sha256:
                raise StoreError(f"object {sha256} arrived with sha256 {digest.hexdigest()}")
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        return size

    def named(self, sha256: str, name: str) -> Path:
        """The object under a readable file name (ultralytics wants ``best.pt``, not a hash)."""
        target = self.root / "files" / sha256 / name
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            link_or_copy(self.object_path(sha256), target)
        return target

    def materialise(self, manifest: VersionManifest) -> Path:
        """The version folder for ``manifest`` (whose objects must be here), label caches
        included; returns its data.yaml, written last."""
        pool = self.root / "pool"
        for kind in (IMAGES, LABELS):
            (pool / kind).mkdir(parents=True, exist_ok=True)
        by_split: dict[str, list[LabelEntry]] = {split: [] for split in SPLITS}
        objects = f"{self.root}/objects/sha256"  # strings: 20k pathlib joins cost a second
        for entry in manifest.entries:
            label = f"{pool}/{LABELS}/{entry.pair}.txt"
            if not os.path.exists(label):  # the label goes last: a pair with a label is complete
                for sha256, target in (
                    (entry.image_sha256, f"{pool}/{IMAGES}/{entry.file}"),
                    (entry.label_sha256, label),
                ):
                    _place(f"{objects}/{sha256[:2]}/{sha256}", target)
            with open(label, encoding="utf-8") as text:
                by_split[entry.split].append(
                    LabelEntry(entry.file, entry.width, entry.height, text.read())
                )
        version_dir = self.root / "versions" / manifest.version
        for split, entries in by_split.items():
            split_dir = version_dir / split
            split_dir.mkdir(parents=True, exist_ok=True)
            for kind in (IMAGES, LABELS):
                link = split_dir / kind
                if not link.is_symlink():
                    with contextlib.suppress(FileExistsError):  # another worker of this node
                        link.symlink_to(os.path.relpath(pool / kind, split_dir))
            lines = "".join(f"{list_line(split, e.image)}\n" for e in entries)
            write_atomic(version_dir / f"{split}.txt", lines.encode())
            if entries:
                write_labels_cache(split_dir, entries, len(manifest.names))
        data_yaml = version_dir / DATA_YAML
        write_atomic(data_yaml, data_yaml_text(manifest.names).encode())
        return data_yaml


class DatasetStore:
    """The content-addressed part of the object store, over one boto3 client (thread-safe)."""

    def __init__(self, client: Any, bucket: str, prefix: str = "", workers: int = DEFAULT_WORKERS):
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.workers = workers
        attempts = client.meta.config.retries.get("max_attempts", 8)
        self._http = urllib3.PoolManager(
            maxsize=workers,
            retries=urllib3.Retry(
                total=attempts - 1,
                backoff_factor=0.2,
                backoff_jitter=0.2,
                status_forcelist=(429, 500, 502, 503, 504),
            ),
        )

    def key(self, relative: str) -> str:
        return f"{self.prefix}{relative}"

    def object_key(self, sha256: str) -> str:
        return self.key(f"objects/sha256/{sha256[:2]}/{sha256}")

    def manifest_key(self, version: str) -> str:
        return self.key(f"versions/{version}.json")

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def has(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise StoreError(f"checking {self.uri(key)} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"checking {self.uri(key)} failed: {exc}") from exc

    def _put(self, key: str, body: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body)
        except (BotoCoreError, ClientError) as exc:
            raise StoreError(f"writing {self.uri(key)} failed: {exc}") from exc

    def _get(self, key: str) -> Any:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except (BotoCoreError, ClientError) as exc:
            raise StoreError(f"reading {self.uri(key)} failed: {exc}") from exc

    def _download(self, sha256: str, cache: NodeCache) -> int:
        key = self.object_key(sha256)
        url = self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=600
        )
        try:
            response = self._http.request("GET", url, preload_content=False)
        except urllib3.exceptions.HTTPError as exc:
            raise StoreError(f"reading {self.uri(key)} failed: {exc}") from exc
        try:
            if response.status != 200:
                raise StoreError(f"reading {self.uri(key)} failed: HTTP {response.status}")
            return cache.write_verified(sha256, response.stream(CHUNK))
        finally:
            response.release_conn()

    def _parallel(self, work: Callable[[str], Any], items: list[str]) -> list[Any]:
        if len(items) <= 1:
            return [work(item) for item in items]
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            return list(pool.map(work, items))

    # Objects

    def put_file(self, path: Path, sha256: str | None = None) -> str:
        """Uploads one file as an object unless the store has it; returns its sha256."""
        sha256 = sha256 or sha256_file(path)
        key = self.object_key(sha256)
        if not self.has(key):
            try:  # boto3's transfer manager: multipart for large weights and engines
                self.client.upload_file(str(path), self.bucket, key)
            except (BotoCoreError, ClientError) as exc:
                raise StoreError(f"uploading {path.name} to {self.uri(key)} failed: {exc}") from exc
        return sha256

    def fetch_file(self, sha256: str, name: str, cache: NodeCache) -> Path:
        """The object as ``name`` in the node cache, downloaded (and verified) if missing."""
        if not cache.has(sha256):
            self._download(sha256, cache)
        return cache.named(sha256, name)

    def put_bytes(self, key: str, data: bytes) -> None:
        self._put(key, data)

    def get_bytes(self, key: str) -> bytes:
        return self._get(key).read()

    # Versions

    def push_version(
        self, manifest: VersionManifest, files: dict[str, Path], cache: NodeCache | None = None
    ) -> Transfer:
        """Uploads the objects the store lacks, then the manifest.

        Objects named by the newest earlier manifest are known to be there (manifests go last);
        the rest are checked one by one. ``cache`` adopts the local files, so this host can later
        materialise the version without downloading what it already has.
        """
        needed = manifest.objects()
        known = self._objects_of_latest()
        candidates = sorted(set(needed) - known)

        def upload(sha256: str) -> int | None:
            if self.has(self.object_key(sha256)):
                return None
            data = files[sha256].read_bytes()
            self._put(self.object_key(sha256), data)
            return len(data)

        sent = [n for n in self._parallel(upload, candidates) if n is not None]
        if cache is not None:
            for sha256, path in files.items():
                cache.adopt(path, sha256)
        self._put(self.manifest_key(manifest.version), manifest.model_dump_json().encode())
        self._put(self.key("versions/LATEST"), manifest.version.encode())
        return Transfer(objects=len(needed), transferred=len(sent), bytes=sum(sent))

    def _objects_of_latest(self) -> set[str]:
        try:
            latest = self.get_bytes(self.key("versions/LATEST")).decode()
        except StoreError:
            return set()
        return set(self.load_manifest(latest).objects())

    def load_manifest(self, version: str) -> VersionManifest:
        return VersionManifest.model_validate_json(self.get_bytes(self.manifest_key(version)))

    def pull_version(self, version: str, cache: NodeCache) -> tuple[Path, Transfer]:
        """Syncs ``version`` into ``cache`` (only missing objects) and materialises it.

        Returns the node-local data.yaml and what was downloaded.
        """
        manifest = self.load_manifest(version)
        needed = manifest.objects()
        missing = [sha256 for sha256 in sorted(needed) if not cache.has(sha256)]

        sizes = self._parallel(lambda sha256: self._download(sha256, cache), missing)
        data_yaml = cache.materialise(manifest)
        return data_yaml, Transfer(objects=len(needed), transferred=len(sizes), bytes=sum(sizes))
