"""Where volumes live: local disk or object storage (S3, GCS, any fsspec URL), in one place.

Every function here takes a *location*: a local path (``str`` or :class:`~pathlib.Path`)
or a URL ``scheme://bucket/key`` that fsspec understands (``s3://``, ``gs://``,
``gcs://``, ``memory://``, ...). Local paths keep their exact local behaviour; URLs
go through one cached fsspec filesystem per protocol and endpoint.

Endpoint and credentials come the standard way, never from emqc's own settings:

- S3: ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` (an S3-compatible server such as
  MinIO or Ceph), ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_PROFILE``,
  or ``~/.aws/config`` and ``~/.aws/credentials``. botocore honours these variables
  itself; the endpoint is also passed explicitly so that a changed variable gives a
  fresh filesystem (fsspec caches one per set of arguments) and messages can name it.
- GCS: ``GOOGLE_APPLICATION_CREDENTIALS`` or the gcloud default credentials (needs
  ``gcsfs``).

Failures of the store itself (bucket missing, access denied, endpoint unreachable,
no credentials, no fsspec driver for the protocol) raise
:class:`~emqc.errors.StorageError` naming the URL, the problem and the fix, with the
client's exception as its cause; a missing *object* stays a ``FileNotFoundError``.

A single PUT is atomic on S3 and GCS (readers see the old object or the new one,
never a part), so :func:`write_bytes` is atomic on every backend.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import posixpath
import re
import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import EmqcError, StorageError

__all__ = [
    "Location",
    "is_url",
    "is_remote",
    "as_location",
    "join",
    "parent",
    "basename",
    "storage_options",
    "filesystem_for",
    "zarr_store",
    "close_filesystems",
    "storage_errors",
    "probe",
    "read_bytes",
    "write_bytes",
    "exists",
    "list_files",
    "cat_files",
    "copy_files",
    "remove_file",
    "remove_tree",
]

#: A local path or an fsspec URL.
Location = str | os.PathLike[str]

_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_LOCAL_PROTOCOLS = ("file", "local")
_DRIVERS = {"s3": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs"}
_ASYNC_FS: dict[tuple[str, tuple[tuple[str, Any], ...]], Any] = {}
_ASYNC_LOCK = threading.Lock()
_SYNC_FS: dict[tuple[str, tuple[tuple[str, Any], ...]], Any] = {}
#: Objects fetched per batch when hashing (each a chunk of at most a few MiB).
_CAT_BATCH = 64


def is_url(location: object) -> bool:
    """True when ``location`` is a string of the form ``scheme://...``."""
    return isinstance(location, str) and _URL.match(location) is not None


def is_remote(location: object) -> bool:
    """True for a URL outside the local filesystem (anything but ``file://``)."""
    return is_url(location) and _protocol(str(location)) not in _LOCAL_PROTOCOLS


def _protocol(url: str) -> str:
    m = _URL.match(url)
    return m.group(1).lower() if m else "file"


def _local(location: Location) -> Path:
    """A local location as a Path (``file://`` URLs unwrapped)."""
    s = os.fspath(location)
    if is_url(s):
        s = s.split("://", 1)[1]
    return Path(s).expanduser()


def as_location(location: Location) -> str | Path:
    """``location`` as a URL string when remote, else as a local Path (``file://`` unwrapped)."""
    if is_remote(location):
        return str(location)
    s = os.fspath(location)
    return Path(s.split("://", 1)[1]) if is_url(s) else Path(s)


def join(location: Location, *parts: str) -> str | Path:
    """``location/part/...``: a URL string for a remote location, else a Path."""
    if is_remote(location):
        base = str(location).rstrip("/")
        return "/".join([base, *(p.strip("/") for p in parts if p)])
    return _local(location).joinpath(*parts)


def parent(location: Location) -> str | Path:
    """The folder (prefix) holding ``location``."""
    if is_remote(location):
        scheme, rest = str(location).rstrip("/").split("://", 1)
        return f"{scheme}://{posixpath.dirname(rest)}"
    return _local(location).parent


def basename(location: Location) -> str:
    """The last path component of ``location``."""
    if is_remote(location):
        return posixpath.basename(str(location).rstrip("/"))
    return _local(location).name


def storage_options(url: str) -> dict[str, Any]:
    """fsspec options for ``url`` taken from the standard environment variables.

    Parameters
    ----------
    url : str
        An fsspec URL.

    Returns
    -------
    dict
        For S3, ``{"endpoint_url": ...}`` when ``AWS_ENDPOINT_URL_S3`` or
        ``AWS_ENDPOINT_URL`` is set (and ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`` is
        not true); otherwise empty, leaving the rest to the client's own lookup.
    """
    if _protocol(url) in ("s3", "s3a"):
        ignore = os.environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").lower() == "true"
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint and not ignore:
            return {"endpoint_url": endpoint}
    return {}


def filesystem_for(url: str, *, asynchronous: bool = False, **kwargs: Any) -> tuple[Any, str]:
    """The fsspec filesystem for ``url`` and the path inside it.

    Parameters
    ----------
    url : str
        An fsspec URL (``s3://bucket/key``, ``gs://bucket/key``, ...).
    asynchronous : bool, optional
        Make an instance for use inside an event loop (what zarr's store needs).
    **kwargs
        More fsspec options (e.g. ``skip_instance_cache=True``).

    Returns
    -------
    fs : fsspec.AbstractFileSystem
    path : str
        ``url`` without its scheme, as ``fs`` expects it.

    Raises
    ------
    emqc.errors.StorageError
        When no fsspec driver for the protocol is installed.
    """
    import fsspec

    opts = {**storage_options(url), **kwargs}
    if asynchronous:
        opts["asynchronous"] = True
    try:
        if asynchronous or kwargs or not is_remote(url):
            return fsspec.url_to_fs(url, **opts)
        # One synchronous instance per protocol and endpoint for every thread (fsspec's own
        # cache makes one per thread, each with a connection pool that nobody closes).
        key = (_protocol(url), tuple(sorted(opts.items())))
        with _ASYNC_LOCK:
            fs = _SYNC_FS.get(key)
            if fs is None:
                fs = _SYNC_FS[key] = fsspec.url_to_fs(url, skip_instance_cache=True, **opts)[0]
        return fs, fs._strip_protocol(url)
    except (ImportError, ValueError) as exc:
        proto = _protocol(url)
        package = _DRIVERS.get(proto, f"the fsspec driver for {proto}://")
        raise StorageError(
            f"cannot open {url}: no filesystem for {proto}:// is available ({exc}). Install "
            f"{package} into emqc's environment (pip install {package}) and rerun."
        ) from exc


def zarr_store(location: Location, *, read_only: bool) -> Any:
    """A zarr 3 store at ``location``: a ``LocalStore``, or an ``FsspecStore`` for a URL.

    Stores for URLs share one asynchronous filesystem per protocol and endpoint,
    used only on zarr's event loop; :func:`close_filesystems` closes their
    connections (also run at exit).
    """
    from zarr.storage import FsspecStore, LocalStore

    if not is_remote(location):
        return LocalStore(_local(location), read_only=read_only)
    url = str(location)
    key = (_protocol(url), tuple(sorted(storage_options(url).items())))
    with _ASYNC_LOCK:
        fs = _ASYNC_FS.get(key)
        if fs is None:
            fs, _ = filesystem_for(url, asynchronous=True, skip_instance_cache=True)
            if not fs.async_impl:
                from fsspec.implementations.asyn_wrapper import AsyncFileSystemWrapper

                fs = AsyncFileSystemWrapper(fs, asynchronous=True)
            _ASYNC_FS[key] = fs
    path = filesystem_for(url)[1]
    return _shared_store_class(FsspecStore)(fs, path=path.rstrip("/"), read_only=read_only, url=url)


@functools.cache
def _shared_store_class(base: type) -> type:
    """``FsspecStore`` that pickles as its URL: unpickled (on a Dask worker) it shares that
    process's filesystem from :func:`zarr_store` instead of making a client of its own, whose
    connection pool nobody would close."""

    class SharedFsspecStore(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, url: str, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._emqc_url = url

        def __reduce__(self) -> tuple:
            return (functools.partial(zarr_store, read_only=self.read_only), (self._emqc_url,))

        def with_read_only(self, read_only: bool = False) -> Any:
            return zarr_store(self._emqc_url, read_only=read_only)

    return SharedFsspecStore


def close_filesystems() -> None:
    """Close the connections of the filesystems :func:`zarr_store` opened.

    s3fs closes the sessions of its synchronous instances when they are collected,
    but not those of asynchronous ones; this does it on zarr's event loop.
    """
    with _ASYNC_LOCK:
        opened = list(_ASYNC_FS.values())
        _ASYNC_FS.clear()
        synchronous = list(_SYNC_FS.values())
        _SYNC_FS.clear()
    for fs in synchronous:
        creator = getattr(fs, "_s3creator", None)
        if creator is not None:
            type(fs).close_session(fs.loop, creator)
    for fs in opened:
        creator = getattr(fs, "_s3creator", None)
        if creator is None:
            continue
        try:
            from zarr.core.sync import sync

            sync(creator.__aexit__(None, None, None))
        except Exception:  # zarr's loop already stopped (at exit): close the sockets
            with contextlib.suppress(AttributeError):
                fs._s3._endpoint.http_session._connector._close()


atexit.register(close_filesystems)


def _endpoint(url: str) -> str:
    ep = storage_options(url).get("endpoint_url")
    return f"endpoint {ep}" if ep else f"the default {_protocol(url)}:// endpoint"


def _bucket(url: str) -> str:
    return url.split("://", 1)[1].split("/", 1)[0]


def _hints(url: str) -> tuple[str, str]:
    """Where the endpoint and the credentials come from, for messages."""
    if _protocol(url) in ("s3", "s3a"):
        return (
            "AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL or ~/.aws/config",
            "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE or ~/.aws/credentials",
        )
    return "the URL", "the filesystem driver's credentials (GCS: GOOGLE_APPLICATION_CREDENTIALS)"


def _translate(exc: BaseException, url: str, doing: str) -> StorageError | None:
    """The :class:`StorageError` for a failure of the store, or None for any other error."""
    from aiohttp import ClientConnectionError
    from botocore import exceptions as boto

    # s3fs turns S3 error codes into built-in exceptions and keeps the ClientError as cause.
    response = getattr(exc.__cause__, "response", None) or getattr(exc, "response", None)
    code = str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""
    bucket = _bucket(url)
    head, (env, creds) = f"cannot {doing} {url}", _hints(url)
    if code == "NoSuchBucket" or (
        isinstance(exc, FileNotFoundError) and "bucket does not exist" in str(exc).lower()
    ):
        problem = f"the bucket {bucket!r} does not exist at {_endpoint(url)}"
        how = f" (e.g. `aws s3 mb s3://{bucket}`)" if env.startswith("AWS") else ""
        fix = f"Create it first{how} or correct the URL; the endpoint comes from {env}."
    elif isinstance(exc, boto.NoCredentialsError):
        problem, fix = "no credentials were found", f"Set {creds} and rerun."
    elif isinstance(exc, PermissionError) or code in ("AccessDenied", "InvalidAccessKeyId"):
        problem = f"access was denied ({exc})"
        fix = f"Check the credentials ({creds}) and that they may read and write this bucket."
    elif isinstance(
        exc, (ConnectionError, TimeoutError, ClientConnectionError, boto.ConnectionError)
    ):
        problem = f"{_endpoint(url)} cannot be reached ({exc})"
        fix = f"Check that the server is up and that {env} names it (and any proxy), then rerun."
    elif isinstance(exc, (boto.ClientError, boto.BotoCoreError)):
        problem = f"the object store refused the request ({exc})"
        fix = f"Check the URL, the bucket's settings and {env}, then rerun."
    else:
        return None
    return StorageError(f"{head}: {problem}. {fix}")


@contextlib.contextmanager
def storage_errors(location: Location, doing: str = "access") -> Iterator[None]:
    """Turn failures of the object store inside the block into :class:`StorageError`.

    Errors emqc raises on purpose, errors of local paths and a missing object
    (``FileNotFoundError``) pass through unchanged.

    Parameters
    ----------
    location : str or path-like
        What is being accessed (named in the message).
    doing : str, optional
        The verb for the message, e.g. ``"write"`` or ``"read"``.
    """
    try:
        yield
    except EmqcError:
        raise
    except Exception as exc:
        if not is_remote(location):
            raise
        translated = _translate(exc, str(location), doing)
        if translated is None:
            raise
        raise translated from exc


def probe(location: Location, doing: str = "access") -> None:
    """Check that ``location``'s bucket exists and can be listed (remote only).

    Raises
    ------
    emqc.errors.StorageError
        Bucket missing, access denied or endpoint unreachable.
    """
    if not is_remote(location):
        return
    url = str(location)
    fs, path = filesystem_for(url)
    with storage_errors(url, doing):
        fs.ls(_bucket(url), detail=False)
        fs.invalidate_cache(path)


def read_bytes(location: Location) -> bytes:
    """All bytes of one file or object (``FileNotFoundError`` when it is absent)."""
    if not is_remote(location):
        return _local(location).read_bytes()
    fs, path = filesystem_for(str(location))
    with storage_errors(location, "read"):
        return bytes(fs.cat_file(path))


def write_bytes(location: Location, data: bytes) -> None:
    """Write one small file atomically: readers see the old content or the new, never a part.

    Locally: a temporary file ``<name>.<random>.emqc-tmp`` beside it, flushed and
    fsynced, then renamed over the target (``os.replace``). On an object store: one
    PUT, which the store applies atomically.
    """
    if not is_remote(location):
        target = _local(location)
        tmp = target.with_name(f"{target.name}.{uuid.uuid4().hex[:8]}.emqc-tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return
    fs, path = filesystem_for(str(location))
    with storage_errors(location, "write"):
        fs.pipe_file(path, bytes(data))
        fs.invalidate_cache(path)


def exists(location: Location) -> bool:
    """True when a file (object) or folder (non-empty prefix) exists at ``location``."""
    if not is_remote(location):
        return _local(location).exists()
    fs, path = filesystem_for(str(location))
    with storage_errors(location, "access"):
        fs.invalidate_cache(path)
        return bool(fs.exists(path))


def list_files(location: Location) -> dict[str, int]:
    """Every file below ``location``: relative POSIX path -> size in bytes.

    Empty when nothing is there. Folders (and S3's zero-byte folder markers) are
    not files.
    """
    if not is_remote(location):
        root = _local(location)
        out = {}
        for dirpath, _, names in os.walk(root):
            for name in names:
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, root).replace(os.sep, "/")
                out[rel] = os.stat(full).st_size
        return out
    fs, path = filesystem_for(str(location))
    prefix = path.rstrip("/") + "/"
    with storage_errors(location, "list"):
        _forget_listings(fs, path.rstrip("/"))
        found = fs.find(path, detail=True)
    return {
        name[len(prefix) :]: int(info.get("size") or 0)
        for name, info in found.items()
        if name.startswith(prefix) and info.get("type") != "directory" and not name.endswith("/")
    }


def cat_files(location: Location, rels: list[str]) -> Iterator[tuple[str, bytes]]:
    """Yield ``(rel, bytes)`` for each file below ``location``, fetched concurrently in batches.

    Raises ``FileNotFoundError`` for a file that is absent.
    """
    if not is_remote(location):
        root = _local(location)
        for rel in rels:
            yield rel, (root / rel).read_bytes()
        return
    fs, path = filesystem_for(str(location))
    base = path.rstrip("/")
    _forget_listings(fs, base)  # objects written since through another client
    for i in range(0, len(rels), _CAT_BATCH):
        batch = rels[i : i + _CAT_BATCH]
        with storage_errors(location, "read"):
            got = fs.cat([f"{base}/{r}" for r in batch], on_error="return")
        for rel in batch:
            value = got.get(f"{base}/{rel}")
            if isinstance(value, BaseException):
                with storage_errors(location, "read"):
                    raise value
            if value is None:
                raise FileNotFoundError(f"{base}/{rel}")
            yield rel, bytes(value)


def _forget_listings(fs: Any, path: str) -> None:
    """Drop the cached listings of ``path`` and of every folder below it.

    ``invalidate_cache(path)`` forgets ``path`` and its parents only; a stale listing
    of a subfolder makes s3fs report an object written since as missing.
    """
    fs.invalidate_cache(path)
    for key in [k for k in list(fs.dircache) if k.startswith(path + "/")]:
        fs.dircache.pop(key, None)


def copy_files(src: str, dest: str, rels: list[str]) -> None:
    """Copy files from one prefix to another on the same object store (server-side).

    Parameters
    ----------
    src, dest : str
        URLs of two prefixes on the same store.
    rels : list of str
        Relative paths to copy.
    """
    fs, src_path = filesystem_for(src)
    _, dest_path = filesystem_for(dest)
    s, d = src_path.rstrip("/"), dest_path.rstrip("/")
    with storage_errors(dest, "write"):
        for i in range(0, len(rels), _CAT_BATCH):
            batch = rels[i : i + _CAT_BATCH]
            fs.copy([f"{s}/{r}" for r in batch], [f"{d}/{r}" for r in batch])
        fs.invalidate_cache(d)


def remove_file(location: Location) -> None:
    """Delete one file (object); nothing happens when it is absent."""
    if not is_remote(location):
        _local(location).unlink(missing_ok=True)
        return
    fs, path = filesystem_for(str(location))
    with storage_errors(location, "delete"):
        with contextlib.suppress(FileNotFoundError):
            fs.rm_file(path)
        fs.invalidate_cache(path)


def remove_tree(location: Location) -> None:
    """Delete ``location`` and everything below it; nothing happens when it is absent."""
    if not is_remote(location):
        shutil.rmtree(_local(location), ignore_errors=True)
        return
    fs, path = filesystem_for(str(location))
    with storage_errors(location, "delete"):
        fs.invalidate_cache(path)
        names = fs.find(path)
        if names:
            fs.rm(names)
        fs.invalidate_cache(path)
