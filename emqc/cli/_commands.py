"""``emqc ingest``, ``emqc verify`` and ``emqc sample``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import click

from ..storage import as_location
from . import cli
from ._options import Pair, Triple, open_custody, study_options

# Volume arguments are strings turned into a Path only when local: a click.Path would
# fold an object-store URL's "s3://" into "s3:/".
_LOCATION = click.Path(path_type=str)


@contextlib.contextmanager
def _scheduler(address: str | None) -> Iterator[None]:
    """Use the Dask scheduler at ``address`` for the duration, or local threads if None."""
    if address is None:
        yield
        return
    from distributed import Client

    with Client(address) as client:
        click.echo(f"Using Dask scheduler {address} (dashboard: {client.dashboard_link})", err=True)
        yield


@cli.command()
@click.argument("src")
@click.argument("dest", type=_LOCATION)
@click.option(
    "--voxel-size",
    type=Triple(),
    help="Voxel size z,y,x in nm (e.g. 8,8,8); needed only when SRC does not record it.",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace DEST if it is an emqc volume (kept until the new one is complete).",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Journal each chunk written, and keep the verified chunks of an earlier run into "
    "DEST that was killed (same source files and options); redo only the rest.",
)
@click.option("--operator", help="Who runs the ingest (recorded in the provenance).")
@click.option(
    "--chunk",
    type=click.IntRange(min=8),
    default=128,
    show_default=True,
    help="Chunk edge in voxels.",
)
@click.option(
    "--intensity-range",
    type=Pair(),
    help="Source values mapped to 0 and 255 (default: the stated rule, see docs).",
)
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    help="Dask scheduler address (default: threads on this machine).",
)
@click.option("--no-progress", is_flag=True, help="Do not show progress bars.")
@study_options
def ingest(  # type: ignore[no-untyped-def]
    src,
    dest,
    voxel_size,
    overwrite,
    resume,
    operator,
    chunk,
    intensity_range,
    scheduler,
    no_progress,
    study,
    key,
    reason,
):
    """Convert SRC to a verified OME-Zarr volume at DEST.

    SRC: a folder or glob of TIFF/PNG slices, a multipage TIFF, an MRC file,
    FILE.h5:/dataset, a Zarr/OME-Zarr or N5 folder, or precomputed://URL. SRC (Zarr or
    OME-Zarr) and DEST may be object-store URLs (s3://bucket/key, gs://...; endpoint
    and credentials from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ... or ~/.aws).
    """
    from ..ingest import ingest as run_ingest

    dest = as_location(dest)

    custody = open_custody(study, key, dest)
    if custody is not None and operator is None:
        operator = custody[1].name
    with _scheduler(scheduler):
        result = run_ingest(
            src,
            dest,
            voxel_size_nm=voxel_size,
            chunk=chunk,
            overwrite=overwrite,
            operator=operator,
            intensity_range=intensity_range,
            progress=not no_progress,
            resume=resume,
        )
    z, y, x = result.voxel_size_nm
    kept = f" ({result.chunks_reused} kept from a killed run)" if result.chunks_reused else ""
    click.echo(
        f"ingested {src} -> {result.path}\n"
        f"  shape (z,y,x)   {' x '.join(map(str, result.shape))} voxels at {z:g} x {y:g} x {x:g} nm\n"
        f"  pyramid         {result.n_levels} levels, {result.n_files} files{kept}\n"
        f"  intensity       {result.intensity_rule.kind} ({result.intensity_rule.basis})\n"
        f"  root digest     sha256:{result.root_digest}\n"
        f"  time            {result.seconds:.1f} s ({result.megavoxels_per_second:.1f} Mvoxel/s)"
    )
    if custody is not None:
        s, signer = custody
        ev = s.record(
            signer,
            "ingest",
            reason=reason,
            objects=[s.volume_ref(result.path)],
            params={
                "source": str(src),
                "voxel_size_nm": list(result.voxel_size_nm),
                "shape": list(result.shape),
                "intensity_rule": result.intensity_rule.kind,
            },
        )
        click.echo(f"  custody         event {ev.seq} in {s.ledger.path}")


@cli.command()
@click.argument("dest", type=_LOCATION)
@click.option("--fast", is_flag=True, help="Check presence and sizes only, without re-hashing.")
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    help="For a report folder: where its volumes are (the study folder), to re-hash them.",
)
@click.option(
    "--keys",
    "current_keys",
    type=click.Path(path_type=Path),
    help="For a report folder: the study's key registry now, to catch later revocations "
    "(default: ROOT/keys.json with --data).",
)
@study_options
def verify(dest, fast, data, current_keys, study, key, reason):  # type: ignore[no-untyped-def]
    """Check volume DEST against its manifest, or a signed report folder DEST offline.

    A volume: every stored file is re-hashed (or, with --fast, checked for
    presence and size). A report folder (one with attestation.dsse.json): its
    signatures, files, ledger copy and, with --data ROOT, its volumes' chunks.
    Exits 0 when all is intact, 1 when anything is missing, altered or unexpected
    (each one is named).
    """
    from ..custody._export import ENVELOPE_FILE
    from ..manifest import verify_volume

    dest = as_location(dest)
    if isinstance(dest, Path) and (dest / ENVELOPE_FILE).is_file():
        from ..custody import verify_report

        checked = verify_report(dest, data_root=data, current_keys=current_keys)
        checked.raise_for_problems()
        click.echo(checked.summary())
        return
    custody = open_custody(study, key, dest)
    report = verify_volume(dest, mode="presence" if fast else "digests")
    if custody is not None:
        s, signer = custody
        s.record(
            signer,
            "verify",
            reason=reason,
            objects=[
                {"name": f"volume:{s.name_of(dest)}", "digest": {"sha256": report.root_digest}}
            ],
            params={"mode": report.mode, "ok": report.ok, "problems": report.problems()[:100]},
        )
    report.raise_for_problems()
    what = "present with recorded sizes" if fast else "present and unaltered (SHA-256)"
    click.echo(
        f"OK {dest}: all {report.n_files} files {what}\n  root digest sha256:{report.root_digest}"
    )


@cli.command()
@click.argument("dest", type=_LOCATION)
@click.option("--n", "n", type=click.IntRange(min=1), required=True, help="Number of blocks.")
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    help="Random seed (default: drawn from the OS's secure source and recorded).",
)
@click.option(
    "--block-um",
    type=click.FloatRange(min=0, min_open=True),
    help="Block edge in µm (default 2.56).",
)
@click.option(
    "--block-vox",
    type=Triple(integer=True),
    help="Block edge in voxels instead (one number or z,y,x).",
)
@click.option("--allow-overlap", is_flag=True, help="Let blocks overlap (default: they do not).")
@click.option(
    "--out", type=click.Path(path_type=Path), required=True, help="Block list to write (JSON)."
)
@study_options
def sample(dest, n, seed, block_um, block_vox, allow_overlap, out, study, key, reason):  # type: ignore[no-untyped-def]
    """Draw N random blocks inside tissue of volume DEST, reproducibly."""
    from ..sampling.volume import sample_volume, write_block_list

    if block_um is not None and block_vox is not None:
        raise click.UsageError("give either --block-um or --block-vox, not both")
    dest = as_location(dest)
    custody = open_custody(study, key, dest)
    blocks = sample_volume(
        dest, n=n, seed=seed, block_um=block_um, block_vox=block_vox, allow_overlap=allow_overlap
    )
    write_block_list(blocks, out)
    if custody is not None:
        st, signer = custody
        st.record(
            signer,
            "sample",
            reason=reason,
            objects=[st.volume_ref(dest), st.file_ref(out, kind="blocks")],
            params={
                "n": len(blocks.blocks),
                "seed": blocks.seed,
                "seed_source": blocks.seed_source,
                "block_shape_vox": list(blocks.parameters.block_shape_vox),
            },
        )
    p = blocks.parameters
    click.echo(
        f"sampled {len(blocks.blocks)} blocks of {' x '.join(map(str, p.block_shape_vox))} voxels "
        f"from {dest} -> {out}\n"
        f"  seed            {blocks.seed} ({blocks.seed_source})\n"
        f"  volume digest   sha256:{blocks.volume_digest}\n"
        f"  tissue          {100 * p.mask_tissue_fraction:.1f}% of the volume (mask at level {p.mask_level})"
    )
    for b in blocks.blocks:
        z, y, x = b.origin_vox
        click.echo(f"  {b.id}  origin (z,y,x) = ({z}, {y}, {x}) voxels")
