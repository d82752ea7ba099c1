"""Volumes on S3-compatible object storage, against a real S3 server on loopback.

The server is moto's (``ThreadedMotoServer`` on 127.0.0.1, a free port): real HTTP,
real S3 wire protocol, real s3fs/aiobotocore client; nothing of the client is mocked.
Endpoint and credentials reach emqc only through the standard environment variables.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from emqc import storage
from emqc._atomic import PARTIAL_MARKER
from emqc.cli import cli
from emqc.errors import (
    CorruptSourceError,
    IncompleteVolumeError,
    IntegrityError,
    OutputExistsError,
    SourceNotFoundError,
    StorageError,
)
from emqc.ingest import ingest
from emqc.manifest import MANIFEST_NAME, verify_volume
from emqc.sources import ArraySource, open_source
from emqc.volume import open_volume

moto_server = pytest.importorskip("moto.server")
werkzeug_app = pytest.importorskip("moto.moto_server.werkzeug_app")
boto3 = pytest.importorskip("boto3")

BUCKET = "emqc-test"
CHUNK = 32
SHAPE = (40, 70, 66)  # odd sizes: partial edge chunks at every level


class _Handler(werkzeug_app.MotoRequestHandler):
    """moto's request handler, minus werkzeug's own ``Server`` header and request log.

    moto sets ``Server: amazon.com`` and werkzeug adds a second ``Server`` header;
    aiohttp >= 3.13.4 (under aiobotocore, under s3fs) rejects duplicate singleton
    headers (getmoto/moto#9930, aio-libs/aiohttp#12297). Real S3 sends one.
    """

    def send_response(self, code, message=None):  # type: ignore[no-untyped-def]
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    def log_message(self, *args):  # type: ignore[no-untyped-def]
        pass


class _LoopbackS3(moto_server.ThreadedMotoServer):
    def _server_entry(self) -> None:
        from werkzeug.serving import make_server

        app = werkzeug_app.DomainDispatcherApplication(werkzeug_app.create_backend_app)
        self._server = make_server(
            self._ip_address, self._port, app, True, request_handler=_Handler
        )
        self._server_ready_event.set()
        self._server.serve_forever()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A bucket on a fresh loopback S3 server; the environment points emqc at it."""
    server = _LoopbackS3(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    nowhere = tmp_path_factory.mktemp("aws") / "none"
    with pytest.MonkeyPatch.context() as mp:
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
            mp.delenv(name, raising=False)
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv("AWS_ENDPOINT_URL", endpoint)
        mp.setenv("AWS_CONFIG_FILE", str(nowhere))  # ignore the developer's ~/.aws
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(nowhere))
        client = boto3.client("s3")
        client.create_bucket(Bucket=BUCKET)
        client.close()
        try:
            yield f"s3://{BUCKET}"
        finally:
            _close_filesystems()
            server.stop()


def _close_filesystems() -> None:
    """Close emqc's zarr-store connections and drop s3fs's cached instances (and sessions)."""
    import gc

    import s3fs

    storage.close_filesystems()
    s3fs.S3FileSystem.clear_instance_cache()
    gc.collect()


@pytest.fixture(scope="module")
def cube() -> np.ndarray:
    """A smooth, textured uint8 volume (blobs on a gradient), deterministic."""
    from scipy import ndimage

    rng = np.random.default_rng(7)
    noise = ndimage.gaussian_filter(rng.normal(size=SHAPE), 2.0)
    ramp = np.linspace(0, 1, SHAPE[2])[None, None, :]
    img = 128 + 600 * noise + 40 * ramp
    return np.clip(img, 0, 255).astype(np.uint8)


def _source(cube: np.ndarray) -> ArraySource:
    return ArraySource(cube, voxel_size_nm=(8.0, 8.0, 8.0), name="object-storage test cube")


@pytest.fixture(scope="module")
def local_volume(cube: np.ndarray, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The cube ingested to local disk: the reference every S3 copy must equal."""
    dest = tmp_path_factory.mktemp("local") / "cube.ome.zarr"
    return ingest(_source(cube), dest, chunk=CHUNK, progress=False)


def test_round_trip_local_to_s3(s3, cube, local_volume):  # type: ignore[no-untyped-def]
    url = f"{s3}/round-trip/cube.ome.zarr"
    result = ingest(_source(cube), url, chunk=CHUNK, progress=False)
    assert result.path == url
    assert result.root_digest == local_volume.root_digest
    assert result.n_files == local_volume.n_files

    stored = storage.list_files(url)
    on_disk = storage.list_files(local_volume.path)
    assert stored == on_disk  # same keys, same sizes, manifest included
    assert PARTIAL_MARKER not in stored
    assert not storage.list_files(f"{s3}/round-trip/.cube.ome.zarr.emqc-partial")

    vol = open_volume(url, verify="digests")
    assert vol.root_digest == local_volume.root_digest
    assert vol.path == url and vol.shape == SHAPE and vol.voxel_size_nm == (8.0, 8.0, 8.0)
    np.testing.assert_array_equal(vol.read((0, 0, 0), SHAPE), cube)
    local = open_volume(local_volume.path)
    for level in range(1, vol.n_levels):
        np.testing.assert_array_equal(vol.to_dask(level).compute(), local.to_dask(level).compute())

    report = verify_volume(url)
    assert report.ok and report.n_files == local_volume.n_files
    assert verify_volume(url, mode="presence").ok


def test_ingest_from_s3_zarr_and_ome_zarr(s3, cube, local_volume, tmp_path):  # type: ignore[no-untyped-def]
    import zarr

    plain = tmp_path / "plain.zarr"
    arr = zarr.create_array(plain, shape=cube.shape, chunks=(16, 32, 32), dtype=np.uint8)
    arr[:] = cube
    fs, _ = storage.filesystem_for(s3)
    fs.put(str(plain), f"{BUCKET}/inputs/plain.zarr", recursive=True)
    fs.put(str(local_volume.path), f"{BUCKET}/inputs/image.ome.zarr", recursive=True)

    src = open_source(f"{s3}/inputs/plain.zarr")
    assert src.format == "zarr" and src.shape == SHAPE and src.files() == []
    np.testing.assert_array_equal(src[0:7, 3:40, 5:66], cube[0:7, 3:40, 5:66])
    out = ingest(
        src, tmp_path / "from-zarr.ome.zarr", voxel_size_nm=(8, 8, 8), chunk=CHUNK, progress=False
    )
    assert out.root_digest == local_volume.root_digest

    image = open_source(f"{s3}/inputs/image.ome.zarr")
    assert image.format == "ome-zarr" and image.voxel_size_nm == (8.0, 8.0, 8.0)
    out = ingest(
        f"{s3}/inputs/image.ome.zarr", tmp_path / "from-ome.ome.zarr", chunk=CHUNK, progress=False
    )
    assert out.root_digest == local_volume.root_digest
    assert open_source(f"{s3}/inputs/image.ome.zarr/1").voxel_size_nm == (16.0, 16.0, 16.0)


def test_tampered_and_deleted_chunks_are_named(s3, cube, local_volume):  # type: ignore[no-untyped-def]
    url = f"{s3}/tamper/cube.ome.zarr"
    ingest(_source(cube), url, chunk=CHUNK, progress=False)
    fs, path = storage.filesystem_for(url)
    original = fs.cat_file(f"{path}/0/c/0/1/0")
    fs.pipe_file(f"{path}/0/c/0/1/0", original[:-1] + bytes([original[-1] ^ 1]))  # same size
    fs.rm_file(f"{path}/1/c/0/0/1")

    report = verify_volume(url)
    assert not report.ok
    assert report.altered == ("0/c/0/1/0",) and report.missing == ("1/c/0/0/1",)
    assert "altered: level 0 chunk (0, 1, 0) [0/c/0/1/0]" in report.problems()
    assert verify_volume(url, mode="presence").missing == ("1/c/0/0/1",)
    with pytest.raises(IntegrityError, match=r"level 1 chunk \(0, 0, 1\)"):
        open_volume(url)

    bad = CliRunner().invoke(cli, ["verify", url])
    assert bad.exit_code == 1
    assert "level 0 chunk (0, 1, 0)" in bad.output and url in bad.output


def test_cli_ingest_and_verify_with_urls(s3, cube, local_volume):  # type: ignore[no-untyped-def]
    url = f"{s3}/cli/cube.ome.zarr"
    args = ["ingest", str(local_volume.path), url, "--chunk", str(CHUNK), "--no-progress"]
    done = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert done.exit_code == 0, done.output
    assert f"-> {url}" in done.output and local_volume.root_digest in done.output
    ok = CliRunner().invoke(cli, ["verify", url], catch_exceptions=False)
    assert ok.exit_code == 0 and local_volume.root_digest in ok.output


def test_overwrite_and_leftovers(s3, cube, local_volume, caplog):  # type: ignore[no-untyped-def]
    url = f"{s3}/overwrite/cube.ome.zarr"
    src = _source(cube)
    ingest(_source(cube[::-1].copy()), url, chunk=CHUNK, progress=False)
    with pytest.raises(OutputExistsError, match="--overwrite"):
        ingest(src, url, chunk=CHUNK, progress=False)
    replaced = ingest(src, url, chunk=CHUNK, overwrite=True, progress=False)
    assert replaced.root_digest == local_volume.root_digest
    assert storage.list_files(url) == storage.list_files(local_volume.path)
    assert not storage.list_files(f"{s3}/overwrite/.cube.ome.zarr.emqc-partial")
    assert verify_volume(url).ok

    # What a killed ingest leaves (marker and chunks, no manifest) is refused, then replaced.
    storage.remove_file(storage.join(url, MANIFEST_NAME))
    storage.write_bytes(storage.join(url, PARTIAL_MARKER), b"{}")
    with pytest.raises(IncompleteVolumeError, match="no emqc-manifest.json"):
        open_volume(url)
    with caplog.at_level("WARNING", logger="emqc"):
        again = ingest(src, url, chunk=CHUNK, progress=False)
    assert "did not finish" in caplog.text and again.root_digest == local_volume.root_digest

    foreign = f"{s3}/foreign/data.ome.zarr"
    storage.write_bytes(storage.join(foreign, "notes.txt"), b"not emqc")
    with pytest.raises(OutputExistsError, match="not an emqc volume"):
        ingest(src, foreign, chunk=CHUNK, overwrite=True, progress=False)
    assert storage.list_files(foreign) == {"notes.txt": 8}


class _FailingSource(ArraySource):
    """Reads fine until the far corner of the volume, as a truncated file would."""

    def _read(self, z: slice, y: slice, x: slice) -> np.ndarray:
        if z.stop == self.shape[0] and x.stop == self.shape[2]:
            raise CorruptSourceError("object-storage test cube: the last box is unreadable")
        return super()._read(z, y, x)


@pytest.mark.parametrize("when, kept", [("create", 0), ("5", 5)])
def test_a_killed_ingest_to_s3_resumes_chunk_by_chunk(
    s3, cube, tmp_path, killed_ingest, when, kept
):  # type: ignore[no-untyped-def]
    """Killed while creating the image's arrays, or before its 6th chunk write."""
    import h5py

    from emqc._chunk_journal import journal_location

    with h5py.File(tmp_path / "cube.h5", "w") as f:
        f.create_dataset("raw", data=cube)
    src, kw = f"{tmp_path / 'cube.h5'}:/raw", dict(voxel_size_nm=(10, 10, 10), chunk=32)
    reference = ingest(src, tmp_path / "ref.ome.zarr", **kw, progress=False)
    url = f"{s3}/resume-{when}/cube.ome.zarr"
    killed_ingest(src, url, when)  # a child process SIGKILLs itself at that moment
    assert PARTIAL_MARKER in storage.list_files(url)
    result = ingest(src, url, **kw, progress=False, resume=True)
    assert (result.chunks_reused, result.root_digest) == (kept, reference.root_digest)
    assert not storage.exists(journal_location(url))
    assert PARTIAL_MARKER not in storage.list_files(url)
    verify_volume(url)


def test_failed_ingest_leaves_nothing_that_looks_complete(s3, cube):  # type: ignore[no-untyped-def]
    url = f"{s3}/failed/cube.ome.zarr"
    src = _FailingSource(cube, voxel_size_nm=(8, 8, 8))
    with pytest.raises(CorruptSourceError, match="last box"):
        ingest(src, url, chunk=CHUNK, progress=False)
    assert storage.list_files(url) == {}  # every object written was removed
    with pytest.raises(IncompleteVolumeError):
        open_volume(url)
    with pytest.raises(IncompleteVolumeError):
        verify_volume(url)


def test_missing_bucket_is_a_clear_storage_error(s3, cube):  # type: ignore[no-untyped-def]
    url = "s3://no-such-bucket-emqc/cube.ome.zarr"
    with pytest.raises(StorageError) as err:
        ingest(_source(cube), url, chunk=CHUNK, progress=False)
    msg = err.value.message
    assert url in msg and "bucket 'no-such-bucket-emqc' does not exist" in msg
    assert "aws s3 mb" in msg and "AWS_ENDPOINT_URL" in msg
    assert isinstance(err.value, OSError) and err.value.__cause__ is not None
    with pytest.raises(StorageError, match="does not exist"):
        open_volume(url)
    with pytest.raises(StorageError, match="does not exist"):
        open_source("s3://no-such-bucket-emqc/plain.zarr")
    with pytest.raises(SourceNotFoundError, match="nothing is stored"):
        open_source(f"{s3}/no/such/volume.zarr")
    bad = CliRunner().invoke(cli, ["verify", url])
    assert bad.exit_code == 2 and "Traceback" not in bad.output
    assert bad.output.startswith("error: ") and "does not exist" in bad.output


def test_unreachable_endpoint_is_a_clear_storage_error(s3, cube, monkeypatch):  # type: ignore[no-untyped-def]
    endpoint = f"http://127.0.0.1:{_free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # fail fast instead of retrying with back-off
    url = f"{s3}/unreachable/cube.ome.zarr"
    with pytest.raises(StorageError) as err:
        ingest(_source(cube), url, chunk=CHUNK, progress=False)
    msg = err.value.message
    assert url in msg and f"endpoint {endpoint} cannot be reached" in msg
    assert "AWS_ENDPOINT_URL" in msg
    with pytest.raises(StorageError, match="cannot be reached"):
        open_volume(url)


@pytest.fixture
def enforced_auth(s3, monkeypatch):  # type: ignore[no-untyped-def]
    """Make the server check credentials (moto's IAM), which the test's keys then fail.

    The server runs in this process, so this sets what its ``/moto-api/reset-auth``
    endpoint would.
    """
    from moto import settings
    from moto.core.responses import ActionAuthenticatorMixin

    monkeypatch.setattr(settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    monkeypatch.setattr(ActionAuthenticatorMixin, "request_count", 0)


def test_denied_access_is_a_clear_storage_error(s3, cube, enforced_auth):  # type: ignore[no-untyped-def]
    url = f"{s3}/denied/cube.ome.zarr"
    with pytest.raises(StorageError) as err:
        ingest(_source(cube), url, chunk=CHUNK, progress=False)
    msg = err.value.message
    assert url in msg and "access was denied" in msg and "AWS_ACCESS_KEY_ID" in msg
    with pytest.raises(StorageError, match="access was denied"):
        open_volume(url)


def test_local_errors_pass_through_and_missing_driver() -> None:
    with pytest.raises(PermissionError):  # local paths keep their own errors
        with storage.storage_errors(Path("/somewhere"), "write"):
            raise PermissionError("Access Denied")
    with pytest.raises(StorageError, match=r"no filesystem for nosuch://"):
        storage.filesystem_for("nosuch://bucket/x")


@pytest.mark.filterwarnings("ignore:window_nm")
def test_a_batch_study_on_s3_writes_what_it_writes_locally(s3, tmp_path):  # type: ignore[no-untyped-def]
    from distributed import Client, LocalCluster

    from emqc.batch import output_digests, read_study_manifest, run_batch
    from emqc.testing import intensity_maps, synthetic_h5

    synthetic_h5(tmp_path / "a.h5", 0, shape=(40, 96, 96))
    source = f"{s3}/batch-src/b.ome.zarr"
    ingest(open_source(f"{tmp_path / 'a.h5'}:/raw"), source, voxel_size_nm=(10, 10, 10),
           progress=False)  # fmt: skip
    samples = (
        "  - {id: a, source: a.h5:/raw, voxel_size_nm: [10, 10, 10]}\n"
        f"  - {{id: b, source: '{source}', voxel_size_nm: [10, 10, 10]}}\n"
    )
    for name, output in (("local", "local-out"), ("s3", f"{s3}/batch-out")):
        (tmp_path / f"{name}.yaml").write_text(
            f"study: t\noutput: {output}\nseed: 4\nblock_vox: [32, 32, 32]\nblocks: 2\nsamples:\n{samples}"
        )
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
        ) as c,
        Client(c) as client,
    ):
        results = {
            name: run_batch(
                read_study_manifest(tmp_path / f"{name}.yaml"),
                client=client,
                predict=intensity_maps,
            )  # fmt: skip
            for name in ("local", "s3")
        }
        again = run_batch(read_study_manifest(tmp_path / "s3.yaml"), client=client,
                          predict=intensity_maps)  # fmt: skip
    assert all(s.status == "done" for r in results.values() for s in r.samples)
    assert all(s.ran == {} for s in again.samples)  # resumes on S3 from verified units

    local = output_digests(tmp_path / "local-out")
    on_s3 = storage.list_files(f"{s3}/batch-out")
    for rel, digest in local.items():
        if rel.endswith("volume.ome.zarr"):
            assert open_volume(f"{s3}/batch-out/{rel}", verify="digests").root_digest == digest
        else:
            data = storage.read_bytes(f"{s3}/batch-out/{rel}")
            assert data == (tmp_path / "local-out" / rel).read_bytes(), rel
    assert sum(1 for rel in on_s3 if rel.startswith("runs/")) == 2


@pytest.mark.parametrize(
    "args",
    [
        ["score", "s3://b/v.ome.zarr", "--blocks", "2", "--out", "o"],
        ["sample", "s3://b/v.ome.zarr", "--n", "2", "--out", "o.json"],
        ["verify", "s3://b/v.ome.zarr"],
    ],
)
def test_custody_for_a_volume_on_object_storage_is_refused_before_any_work(args, tmp_path):  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(cli, [*args, "--study", str(tmp_path / "study")])
    assert result.exit_code == 2, result.output
    assert "custody events for local volumes only" in result.output
    assert not (tmp_path / "study").exists()
