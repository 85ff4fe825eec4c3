"""Dataset versions in the object store, content-addressed, and the node-local cache they sync into.

A host that built a version pushes it: the images and labels the store lacks are concatenated
into packs, ``{prefix}packs/sha256/{ab}/{abcd...}`` (each named by its own hash, at most
``PACK_BYTES``), then one manifest per version, ``{prefix}versions/{version}.json``, written last,
so a manifest in the store means all its packs are there. The manifest lists every object by
sha256 and where it sits (pack and offset): a grown version reuses the earlier packs and adds
one for its new objects; its push writes ``{prefix}deltas/{version}.json`` too (``VersionDelta``,
before the manifest), from which a node that materialised the parent derives the manifest from
its own copy, both checked by sha256, touching only the added entries. A worker that cannot
see the Azaion root pulls a version into its node cache (objects keyed by sha256, only what it
lacks, through ranged GETs that cover runs of missing objects, in parallel, each object
verified, atomic) and materialises it for ultralytics in the shape ``versions.build_version``
gives on the host:

    {cache}/objects/sha256/ab/abcd...                          the objects
    {cache}/pool/images/{pair}.jpg, pool/labels/{pair}.txt     hard links, shared by all versions
    {cache}/versions/{version}/{train,valid,test}.txt + data.yaml + manifest.json
    {cache}/versions/{version}/{split}/images -> pool/images   (labels alike)
    {cache}/versions/{version}/{split}/labels.cache            written before training

Label caches work as on the host, by one mechanism: before training,
``labels_cache.prepare_labels_caches`` writes each split's cache from the version's facts (here
the manifest: image width and height, label object), so ultralytics scans nothing and the
cache is exact for the bytes this version lists; a sync itself reads no label. The pool names a pair by
the hashes of both its objects (``{pair}``): ultralytics finds a label by its image's path,
so an image paired with an edited label needs a new name, and the host's names are unique
only within one augmentation store while the pool serves every version this node holds.

Weights and exports use the same objects (``put_file`` / ``fetch_file``), so a step on another
machine finds them by sha256.

Why packs: a GET costs both ends about a millisecond of CPU whatever its size (SigV4, parsing,
the server's lookup), so 20,000 small objects per 10,000-image version were bound by request
count, not bytes; a few ranged GETs of megabytes move the same objects at disk speed. Downloads
are GETs of URLs the boto3 client presigns, sent through a urllib3 pool with the client's retry
budget (boto3's own ``get_object`` costs three times the CPU).

A push cut short leaves packs no manifest names: nothing reads them, and retention
(``remove_unreferenced``) deletes them once they are older than a push can take.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, NamedTuple

import urllib3
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field

from azaion_pipeline.lib.dataset.catalogue import Catalogue, list_line
from azaion_pipeline.lib.dataset.versions import (
    DATA_YAML,
    DatasetVersion,
    data_yaml_text,
    read_list,
)
from azaion_pipeline.lib.files import link_or_copy, write_atomic
from azaion_pipeline.lib.hashing import CHUNK, sha256_file
from azaion_pipeline.lib.layout import IMAGES, LABELS, SPLITS
from azaion_pipeline.lib.s3 import delete_objects, object_exists

# The manifest as a node keeps it, beside the version's data.yaml.
MANIFEST = "manifest.json"
# Parallel transfers of one sync: small objects are latency-bound, 32 in flight keep a loopback
# SeaweedFS busy (8 reach ~60% of the rate, 64 no more than 32).
DEFAULT_WORKERS = 32
# A pack holds at most this much (one larger object alone): retention frees whole packs, and a
# push holds one pack per uploading thread in memory.
PACK_BYTES = 16 * 2**20
PACK_UPLOADS = 4
# One ranged GET covers missing objects up to this many bytes; it reads across a gap of objects
# the node has when the gap is smaller than GAP_BYTES (cheaper than another request).
RANGE_BYTES = 4 * 2**20
GAP_BYTES = 256 * 2**10
# An unreferenced pack younger than this may belong to a push still under way.
PUSH_GRACE = timedelta(hours=6)


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
        """Names the pair by content: a new image or label byte gives a new name. Prefixes of
        both hashes (64 bits each) rather than a hash of them: a sync names every pair of a
        version, and hashing again cost most of a grown version's materialisation."""
        return f"{self.image_sha256[:16]}{self.label_sha256[:16]}"

    @property
    def file(self) -> str:
        """The image's file name in a node's pool."""
        return f"{self.pair}{os.path.splitext(self.name)[1].lower()}"

    @property
    def label_file(self) -> str:
        """The label's file name in a node's pool (ultralytics' rule: the image's stem)."""
        return f"{self.pair}.txt"


class Pack(BaseModel):
    """One pack in the store: objects back to back, each found by its offset (its length is
    the manifest's size for it)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")  # of the pack's bytes: its key
    size: int
    offsets: dict[str, int]  # object sha256 -> offset


class VersionManifest(BaseModel):
    """Everything a node needs to rebuild a version: its pairs, the data.yaml facts and, once
    pushed, the packs that hold its objects."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str = Field(pattern=r"^\w[\w.-]*$")  # a folder name on the node, never a path
    names: dict[int, str]  # data.yaml ``names``; ``nc`` is their count
    entries: tuple[ManifestEntry, ...]
    packs: tuple[Pack, ...] = ()

    def objects(self) -> dict[str, int]:
        """sha256 -> size of every object the version needs (shared bytes counted once)."""
        sizes: dict[str, int] = {}
        for entry in self.entries:
            sizes[entry.image_sha256] = entry.image_size
            sizes[entry.label_sha256] = entry.label_size
        return sizes


class VersionDelta(BaseModel):
    """How a version differs from the one pushed before it (its parent), written beside its
    manifest: a node that materialised the parent derives the manifest from its own copy
    instead of fetching and parsing the whole one, and checks the result by its hash."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str = Field(pattern=r"^\w[\w.-]*$")
    parent: str = Field(pattern=r"^\w[\w.-]*$")
    parent_sha256: str  # of the parent's manifest as stored: a node's copy must match it
    sha256: str  # of this version's manifest as stored: the derivation must give these bytes
    names: dict[int, str]
    objects: int  # distinct objects the version needs, as a sync reports them
    removed: tuple[int, ...]  # positions of the parent's entries this version drops
    added: tuple[tuple[int, ManifestEntry], ...]  # new entries at their positions here
    dropped_packs: tuple[str, ...]  # the parent's packs this version no longer needs
    packs: tuple[Pack, ...]  # new packs, after the parent's it keeps

    @classmethod
    def between(cls, parent: VersionManifest, parent_text: bytes, stored: bytes) -> VersionDelta:
        """The delta from ``parent`` (stored as ``parent_text``) to the manifest ``stored``."""
        manifest = VersionManifest.model_validate_json(stored)
        now, before = set(manifest.entries), set(parent.entries)
        kept, held = {p.sha256 for p in manifest.packs}, {p.sha256 for p in parent.packs}
        return cls(
            version=manifest.version,
            parent=parent.version,
            parent_sha256=hashlib.sha256(parent_text).hexdigest(),
            sha256=hashlib.sha256(stored).hexdigest(),
            names=manifest.names,
            objects=len(manifest.objects()),
            removed=tuple(i for i, e in enumerate(parent.entries) if e not in now),
            added=tuple((i, e) for i, e in enumerate(manifest.entries) if e not in before),
            dropped_packs=tuple(p.sha256 for p in parent.packs if p.sha256 not in kept),
            packs=tuple(p for p in manifest.packs if p.sha256 not in held),
        )

    def apply(self, parent_text: bytes, parent_lines: Lines) -> tuple[bytes, Lines] | None:
        """This version's manifest as stored and its list lines, spliced from the parent's text
        and list lines (no entry parsed: the parent's were checked by their hash); None when
        the bytes differ from the pushed ones (entries reordered, another parent)."""
        parts = _manifest_parts(parent_text)
        if parts is None:
            return None
        _, entries, packs = parts
        lines_of = {split: iter(listed) for split, listed in parent_lines.items()}
        removed, added = set(self.removed), dict(self.added)
        kept = []  # (entry text, split, list line) of each parent entry this version keeps
        for index, entry in enumerate(entries):
            split = entry[_SPLIT_AT : entry.find(b'"', _SPLIT_AT)].decode()
            line = next(lines_of.get(split, iter(())), None)
            if index not in removed:
                kept.append((entry, split, line))
        if any(next(rest, None) is not None for rest in lines_of.values()):
            return None  # the parent's lists are longer than its manifest
        placed = iter(kept)
        texts, lines = [], {split: [] for split in SPLITS}
        for index in range(len(kept) + len(added)):
            if index in added:
                entry = added[index]
                text, split = entry.model_dump_json().encode(), entry.split
                line = f"{list_line(split, entry.file)}\n"
            else:
                text, split, line = next(placed)
            if line is None:  # the parent's lists are shorter than its manifest
                return None
            texts.append(text)
            lines[split].append(line)
        dropped = {sha256.encode() for sha256 in self.dropped_packs}
        packs = [p for p in packs if p[_SHA256_AT : _SHA256_AT + 64] not in dropped]
        packs += [p.model_dump_json().encode() for p in self.packs]
        header = (
            VersionManifest.model_construct(
                version=self.version, names=self.names, entries=(), packs=()
            )
            .model_dump_json()
            .encode()
        )
        text = b"".join(
            (
                header[: header.find(_ENTRIES)],
                _ENTRIES,
                b",".join(texts),
                _PACKS,
                b",".join(packs),
                b"]}",
            )
        )
        return (text, lines) if hashlib.sha256(text).hexdigest() == self.sha256 else None


# A stored manifest is pydantic's compact JSON, {"version":..,"names":{..},"entries":[{"split":
# ..},..],"packs":[{"sha256":..},..]}: a grown version is spliced from its parent's text (a few
# C-level splits and joins, where parsing 10,000 entries cost most of a grown sync), and
# the splice counts only if its sha256 is the pushed manifest's.
_ENTRIES, _PACKS = b',"entries":[', b'],"packs":['
_ENTRY, _PACK = b'{"split":"', b'{"sha256":"'
_SPLIT_AT, _SHA256_AT = len(_ENTRY), len(_PACK)
# A version's list lines by split, as ``{split}.txt`` holds them.
Lines = dict[str, list[str]]


def _manifest_parts(text: bytes) -> tuple[bytes, list[bytes], list[bytes]] | None:
    """A stored manifest's text before its entries, each entry's text and each pack's."""
    start, middle = text.find(_ENTRIES), text.rfind(_PACKS)
    if start < 0 or middle < start or not text.endswith(b"]}"):
        return None
    entries = text[start + len(_ENTRIES) : middle]
    return text[:start], _objects(entries, _ENTRY), _objects(text[middle + len(_PACKS) : -2], _PACK)


def _objects(array: bytes, opening: bytes) -> list[bytes]:
    """The texts of a JSON array's objects, each opening with ``opening`` (its first key): a
    comma before that occurs inside none of them, where quotes are escaped."""
    if not array:
        return []
    first, *rest = array.split(b"," + opening)
    return [first, *(opening + item for item in rest)]


@dataclass(frozen=True)
class Transfer:
    """What one push or pull moved: objects needed, objects actually sent, their bytes, and
    the requests that carried them."""

    objects: int
    transferred: int
    bytes: int
    requests: int = 0


@dataclass(frozen=True)
class StoreRetention:
    """What ``remove_unreferenced`` kept and freed in the object store."""

    kept_versions: list[str]
    removed_versions: list[str]
    removed_packs: int
    bytes_freed: int


class Run(NamedTuple):
    """One ranged GET: bytes [start, end) of a pack, and the (sha256, offset, size) it yields."""

    pack: str
    start: int
    end: int
    members: list[tuple[str, int, int]]


def plan_runs(manifest: VersionManifest, missing: set[str]) -> list[Run]:
    """The ranged GETs that fetch ``missing`` objects, each from the first pack that holds it."""
    sizes, wanted, runs = manifest.objects(), set(missing), []
    for pack in manifest.packs:
        members = sorted((o, sha) for sha, o in pack.offsets.items() if sha in wanted)
        wanted -= {sha for _, sha in members}
        run: Run | None = None
        for offset, sha256 in members:
            end = offset + sizes[sha256]
            if run and offset - run.end <= GAP_BYTES and end - run.start <= RANGE_BYTES:
                run = run._replace(end=end)
                run.members.append((sha256, offset, sizes[sha256]))
                continue
            if run:
                runs.append(run)
            run = Run(pack.sha256, offset, end, [(sha256, offset, sizes[sha256])])
        if run:
            runs.append(run)
    if wanted:
        raise StoreError(f"{manifest.version}: {len(wanted)} objects are in none of its packs")
    return runs


def plan_packs(sizes: dict[str, int]) -> list[list[str]]:
    """``sizes``' objects grouped into packs of at most PACK_BYTES, in hash order."""
    packs: list[list[str]] = []
    filled = PACK_BYTES
    for sha256 in sorted(sizes):
        if filled + sizes[sha256] > PACK_BYTES:
            packs.append([])
            filled = 0
        packs[-1].append(sha256)
        filled += sizes[sha256]
    return packs


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


def _listing(folder: Path) -> list[os.DirEntry]:
    """The folder's entries; none when it does not exist (yet)."""
    try:
        with os.scandir(folder) as entries:
            return list(entries)
    except FileNotFoundError:
        return []


class NodeCache:
    """Objects by sha256 on this node's disk, and the versions materialised from them."""

    def __init__(self, root: Path | str):
        self.root = Path(root).absolute()

    def object_path(self, sha256: str) -> Path:
        return self.root / "objects" / "sha256" / sha256[:2] / sha256

    def has(self, sha256: str) -> bool:
        return os.path.exists(f"{self.root}/objects/sha256/{sha256[:2]}/{sha256}")

    def held(self) -> set[str]:
        """The sha256 of every object here: one listing per fan-out folder, where asking
        object by object costs a stat each (20,000 for a 10,000-image version)."""
        held: set[str] = set()
        for folder in _listing(self.root / "objects" / "sha256"):
            if folder.is_dir():
                held.update(e.name for e in _listing(Path(folder.path)) if e.name[0] != ".")
        return held

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

    def materialised(self, version: str, sha256: str) -> tuple[bytes, Lines] | None:
        """The manifest text and list lines of ``version`` as materialised here, if the
        manifest hashes to ``sha256`` (its objects, pool links and lists are then here: the
        manifest is written after them); None otherwise."""
        version_dir = self.root / "versions" / version
        try:
            text = (version_dir / MANIFEST).read_bytes()
            if hashlib.sha256(text).hexdigest() != sha256:
                return None
            return text, {
                split: (version_dir / f"{split}.txt").read_text().splitlines(keepends=True)
                for split in SPLITS
            }
        except FileNotFoundError:
            return None

    def materialise(self, manifest: VersionManifest, text: bytes) -> Path:
        """The version folder for ``manifest`` (whose objects must be here), its pairs linked
        into the pool unless there; see ``write_version``."""
        pooled = {entry.name for entry in _listing(self.root / "pool" / LABELS)}  # no stats
        lines: Lines = {split: [] for split in SPLITS}
        for entry in manifest.entries:
            lines[entry.split].append(f"{list_line(entry.split, entry.file)}\n")
        new = (e for e in manifest.entries if e.label_file not in pooled)
        return self.write_version(manifest.version, manifest.names, text, lines, new)

    def write_version(
        self,
        version: str,
        names: dict[int, str],
        text: bytes,
        lines: Lines,
        new: Iterable[ManifestEntry],
    ) -> Path:
        """Links the ``new`` pairs (their objects must be here) into the pool and writes the
        version folder: its list ``lines``, ``text`` (the manifest as stored) and data.yaml
        (written last, which it returns). The label caches are written from the manifest before
        training (``labels_cache.prepare_labels_caches``), as the host writes them from its
        catalogue; a sync pays nothing per label."""
        pool = self.root / "pool"
        for kind in (IMAGES, LABELS):
            (pool / kind).mkdir(parents=True, exist_ok=True)
        objects = f"{self.root}/objects/sha256"  # strings: 20k pathlib joins cost a second
        for entry in new:  # the label goes last: a pair with a label is complete
            image, label = entry.image_sha256, entry.label_sha256
            _place(f"{objects}/{image[:2]}/{image}", f"{pool}/{IMAGES}/{entry.file}")
            _place(f"{objects}/{label[:2]}/{label}", f"{pool}/{LABELS}/{entry.label_file}")
        version_dir = self.root / "versions" / version
        for split, listed in lines.items():
            split_dir = version_dir / split
            split_dir.mkdir(parents=True, exist_ok=True)
            for kind in (IMAGES, LABELS):
                link = split_dir / kind
                if not link.is_symlink():
                    with contextlib.suppress(FileExistsError):  # another worker of this node
                        link.symlink_to(os.path.relpath(pool / kind, split_dir))
            write_atomic(version_dir / f"{split}.txt", "".join(listed).encode())
        write_atomic(version_dir / MANIFEST, text)
        data_yaml = version_dir / DATA_YAML
        write_atomic(data_yaml, data_yaml_text(names, manifest=MANIFEST).encode())
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

    def pack_key(self, sha256: str) -> str:
        return self.key(f"packs/sha256/{sha256[:2]}/{sha256}")

    def manifest_key(self, version: str) -> str:
        return self.key(f"versions/{version}.json")

    def delta_key(self, version: str) -> str:
        return self.key(f"deltas/{version}.json")

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def has(self, key: str) -> bool:
        try:
            return object_exists(self.client, self.bucket, key)
        except (BotoCoreError, ClientError) as exc:
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

    @contextlib.contextmanager
    def _request(self, key: str, headers: dict[str, str] | None = None) -> Iterator[Any]:
        """A presigned GET of ``key``; yields the streaming response once its status is 2xx."""
        url = self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=600
        )
        try:
            response = self._http.request("GET", url, headers=headers, preload_content=False)
        except urllib3.exceptions.HTTPError as exc:
            raise StoreError(f"reading {self.uri(key)} failed: {exc}") from exc
        try:
            if response.status not in (200, 206):
                raise StoreError(f"reading {self.uri(key)} failed: HTTP {response.status}")
            yield response
        finally:
            response.release_conn()

    def _download(self, sha256: str, cache: NodeCache) -> int:
        with self._request(self.object_key(sha256)) as response:
            return cache.write_verified(sha256, response.stream(CHUNK))

    def _fetch_run(self, run: Run, cache: NodeCache) -> int:
        """One ranged GET; each object in it lands in the cache only if its hash matches."""
        key = self.pack_key(run.pack)
        with self._request(key, {"Range": f"bytes={run.start}-{run.end - 1}"}) as response:
            try:
                data = response.read()
            except urllib3.exceptions.HTTPError as exc:
                raise StoreError(f"reading {self.uri(key)} failed: {exc}") from exc
        if response.status != 206 or len(data) != run.end - run.start:
            raise StoreError(
                f"{self.uri(key)} answered {len(data)} bytes (HTTP {response.status}) for "
                f"bytes {run.start}-{run.end - 1}: the pack is shorter than its manifest says"
            )
        view = memoryview(data)
        for sha256, offset, size in run.members:
            cache.write_verified(sha256, [view[offset - run.start : offset - run.start + size]])
        return sum(size for _, _, size in run.members)

    def _parallel(
        self, work: Callable[[Any], Any], items: list[Any], workers: int | None = None
    ) -> list[Any]:
        if len(items) <= 1:
            return [work(item) for item in items]
        with ThreadPoolExecutor(max_workers=workers or self.workers) as pool:
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

    def _upload_pack(self, members: list[str], files: dict[str, Path]) -> Pack:
        offsets, parts, size = {}, [], 0
        for sha256 in members:
            offsets[sha256] = size
            parts.append(files[sha256].read_bytes())
            size += len(parts[-1])
        data = b"".join(parts)
        pack = Pack(sha256=hashlib.sha256(data).hexdigest(), size=size, offsets=offsets)
        self._put(self.pack_key(pack.sha256), data)
        return pack

    def push_version(
        self, manifest: VersionManifest, files: dict[str, Path], cache: NodeCache | None = None
    ) -> Transfer:
        """Packs and uploads the objects the newest earlier version (the parent) lacks, then
        the delta from the parent, then the manifest, which names the parent's packs it shares
        and the new ones.

        ``cache`` adopts the local files, so this host can later materialise the version
        without downloading what it already has.
        """
        needed = manifest.objects()
        parent = self._latest()
        parent_packs = parent[0].packs if parent else ()
        reused = [p for p in parent_packs if not needed.keys().isdisjoint(p.offsets)]
        located = {sha256 for pack in reused for sha256 in pack.offsets}
        new = {sha256: size for sha256, size in needed.items() if sha256 not in located}
        packed = self._parallel(
            lambda members: self._upload_pack(members, files), plan_packs(new), PACK_UPLOADS
        )
        if cache is not None:
            for sha256, path in files.items():
                cache.adopt(path, sha256)
        stored = manifest.model_copy(update={"packs": (*reused, *packed)})
        text = stored.model_dump_json().encode()
        requests = len(packed) + 2
        if parent and parent[0].version != manifest.version:
            delta = VersionDelta.between(*parent, text)
            self._put(self.delta_key(manifest.version), delta.model_dump_json().encode())
            requests += 1
        self._put(self.manifest_key(manifest.version), text)
        self._put(self.key("versions/LATEST"), manifest.version.encode())
        return Transfer(len(needed), len(new), sum(new.values()), requests)

    def _latest(self) -> tuple[VersionManifest, bytes] | None:
        """The newest pushed version's manifest and its stored text."""
        latest_key = self.key("versions/LATEST")
        if not self.has(latest_key):
            return None
        text = self.get_bytes(self.manifest_key(self.get_bytes(latest_key).decode()))
        return VersionManifest.model_validate_json(text), text

    def load_manifest(self, version: str) -> VersionManifest:
        return VersionManifest.model_validate_json(self.get_bytes(self.manifest_key(version)))

    def pull_version(self, version: str, cache: NodeCache) -> tuple[Path, Transfer]:
        """Syncs ``version`` into ``cache`` (only missing objects) and materialises it.

        Returns the node-local data.yaml and what was downloaded.
        """
        delta = self._delta(version)
        parent = cache.materialised(delta.parent, delta.parent_sha256) if delta else None
        derived = delta.apply(*parent) if delta and parent else None
        if delta and derived:  # the parent's objects and pairs are here: mind the added ones
            text, lines = derived
            added = [entry for _, entry in delta.added]
            missing = {
                sha256
                for entry in added
                for sha256 in (entry.image_sha256, entry.label_sha256)
                if not cache.has(sha256)
            }
            located = {sha256 for pack in delta.packs for sha256 in pack.offsets}
            manifest = VersionManifest.model_construct(  # the new part, unless it lacks a pack
                version=version, names=delta.names, entries=tuple(added), packs=delta.packs
            )
            if not missing <= located:  # an object re-added from an earlier pack
                manifest = VersionManifest.model_validate_json(text)
            sizes = self._fetch(manifest, missing, cache)
            data_yaml = cache.write_version(version, delta.names, text, lines, added)
            return data_yaml, Transfer(delta.objects, len(missing), sum(sizes), len(sizes))
        text = self.get_bytes(self.manifest_key(version))
        manifest = VersionManifest.model_validate_json(text)
        needed = manifest.objects()
        missing = needed.keys() - cache.held()
        sizes = self._fetch(manifest, missing, cache)
        data_yaml = cache.materialise(manifest, text)
        return data_yaml, Transfer(len(needed), len(missing), sum(sizes), len(sizes))

    def _fetch(self, manifest: VersionManifest, missing: set[str], cache: NodeCache) -> list[int]:
        """Fetches ``missing`` objects into ``cache``: the bytes of each ranged GET."""
        return self._parallel(lambda run: self._fetch_run(run, cache), plan_runs(manifest, missing))

    def _delta(self, version: str) -> VersionDelta | None:
        """``version``'s delta from its parent; None for a first version."""
        key = self.delta_key(version)
        if not self.has(key):
            return None
        delta = VersionDelta.model_validate_json(self.get_bytes(key))
        return delta if delta.version == version else None

    # Retention

    def _listing(self, relative: str) -> Iterator[dict]:
        """Every object under ``relative`` (Key, Size, LastModified), page by page."""
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.key(relative)):
                yield from page.get("Contents", ())
        except (BotoCoreError, ClientError) as exc:
            raise StoreError(f"listing {self.uri(self.key(relative))} failed: {exc}") from exc

    def _delete(self, keys: list[str]) -> None:
        try:
            errors = delete_objects(self.client, self.bucket, keys)
        except (BotoCoreError, ClientError) as exc:
            raise StoreError(f"deleting from {self.uri(self.prefix)} failed: {exc}") from exc
        if errors:
            first = errors[0]
            raise StoreError(f"deleting {first.get('Key')} failed: {first.get('Message')}")

    def remove_unreferenced(
        self, keep: set[str], grace: timedelta = PUSH_GRACE, now: datetime | None = None
    ) -> StoreRetention:
        """Deletes the manifests and deltas of versions not in ``keep`` (the newest pushed one
        always stays: the next push builds on it), then every pack no kept manifest names that
        is older than ``grace`` (a younger one may belong to a push under way).

        Manifests go first, so a cut-short run leaves unreferenced packs (removed next
        time), never a manifest without its packs."""
        latest_key = self.key("versions/LATEST")
        latest = self.get_bytes(latest_key).decode() if self.has(latest_key) else None
        manifests = {
            item["Key"].removeprefix(self.key("versions/")).removesuffix(".json"): item
            for item in self._listing("versions/")
            if item["Key"].endswith(".json")
        }
        kept = sorted(v for v in manifests if v in keep or v == latest)
        removed = sorted(set(manifests) - set(kept))
        referenced = {p.sha256 for v in kept for p in self.load_manifest(v).packs}
        self._delete([manifests[v]["Key"] for v in removed])
        freed = sum(manifests[v]["Size"] for v in removed)
        deltas = [
            item
            for item in self._listing("deltas/")
            if item["Key"].removeprefix(self.key("deltas/")).removesuffix(".json") not in kept
        ]
        self._delete([item["Key"] for item in deltas])
        freed += sum(item["Size"] for item in deltas)
        cutoff = (now or datetime.now(UTC)) - grace
        stale = [
            item
            for item in self._listing("packs/sha256/")
            if item["Key"].rsplit("/", 1)[-1] not in referenced and item["LastModified"] <= cutoff
        ]
        self._delete([item["Key"] for item in stale])
        freed += sum(item["Size"] for item in stale)
        return StoreRetention(kept, removed, len(stale), freed)
