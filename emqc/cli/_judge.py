"""``emqc judge``: blinded judging sessions (create, status)."""

from __future__ import annotations

from pathlib import Path

import click

from . import cli
from ._options import Triple, open_custody, study_options


def _samples(values: tuple[str, ...]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for v in values:
        name, sep, path = v.partition("=")
        if not sep or not name or not path:
            raise click.BadParameter(f"{v!r}: give ID=VOLUME, e.g. S01=vols/S01.ome.zarr")
        if name in out:
            raise click.BadParameter(f"sample id {name!r} given twice")
        out[name] = Path(path)
    return out


@cli.group()
def judge() -> None:
    """Blinded judging: sessions of sampled blocks that judges rate without knowing the sample."""


@judge.command("create")
@click.option(
    "--sample",
    "samples",
    multiple=True,
    required=True,
    metavar="ID=VOLUME",
    help="A sample id and its ingested volume (repeat for every sample).",
)
@click.option("--judges", required=True, help="Judge names, comma-separated (e.g. alice,bob).")
@click.option("--blocks-per-sample", type=click.IntRange(min=1), required=True)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Session folder.")
@click.option(
    "--seed", type=click.IntRange(min=0), help="Seed (default: drawn; kept in sealed/ only)."
)
@click.option(
    "--repeat-share",
    type=click.FloatRange(0, 1),
    default=0.1,
    show_default=True,
    help="Share of blocks shown twice, to measure each judge's consistency.",
)
@click.option("--block-um", type=click.FloatRange(min=0, min_open=True), help="Block edge in µm.")
@click.option("--block-vox", type=Triple(integer=True), help="Block edge in voxels instead.")
@study_options
def judge_create(  # type: ignore[no-untyped-def]
    samples, judges, blocks_per_sample, out, seed, repeat_share, block_um, block_vox,
    study, key, reason,
):  # fmt: skip
    """Draw blocks from every sample and write a blinded session for the judges.

    Judges get the folder without its sealed/ part (the coordinator's code-to-sample
    mapping), which is opened only when every judge has locked.
    """
    from ..judging import create_session

    if block_um and block_vox:
        raise click.UsageError("give --block-um or --block-vox, not both")
    names = [j.strip() for j in judges.split(",") if j.strip()]
    volumes = _samples(samples)
    custody = open_custody(study, key)
    session = create_session(
        volumes, names, blocks_per_sample=blocks_per_sample, out=out, seed=seed,
        repeat_share=repeat_share, block_um=block_um, block_vox=block_vox,
    )  # fmt: skip
    if custody is not None:
        st, signer = custody
        st.record(signer, "judge.session", reason=reason,
                  objects=[st.file_ref(Path(out) / "session.json", kind="judging-session"),
                           *(st.volume_ref(p) for p in volumes.values())],
                  params={"session": session.session_id, "judges": names,
                          "blocks_per_sample": blocks_per_sample})  # fmt: skip
    n = {j: len(o) for j, o in session.orders.items()}
    click.echo(
        f"created judging session {session.session_id} in {out}\n"
        f"  judges   {', '.join(f'{j} ({k} blocks)' for j, k in n.items())}\n"
        f"  sealed   {Path(out) / 'sealed'}: the coordinator's mapping; do not give it to judges"
    )


@judge.command("status")
@click.argument("session", type=click.Path(path_type=Path))
def judge_status(session):  # type: ignore[no-untyped-def]
    """Each judge's progress and whether they have locked."""
    from ..judging import JudgeSession, Session

    s = Session.open(session)
    for name in s.judges:
        js = JudgeSession(session, name)
        click.echo(f"{name:16s} {js.progress()}  {'locked' if js.locked else 'open'}")


@judge.command("open")
@click.argument("session", type=click.Path(path_type=Path))
@click.option("--judge", "name", required=True, help="Your name in the session.")
@click.option(
    "--study",
    type=click.Path(path_type=Path),
    envvar="EMQC_STUDY",
    help="Study whose custody ledger records each verdict (default: $EMQC_STUDY).",
)
@click.option(
    "--key",
    type=click.Path(path_type=Path),
    envvar="EMQC_KEY",
    help="Your private key, to sign each verdict (default: $EMQC_KEY).",
)
def judge_open(session, name, study, key):  # type: ignore[no-untyped-def]
    """Open napari on your blocks of SESSION, at the first one without a verdict."""
    from ..judging import JudgeSession

    JudgeSession(session, name)  # a wrong session or name fails here, before napari starts
    custody = open_custody(study, key)
    import napari
    from emqc_napari._widget import JudgingWidget

    viewer = napari.Viewer(title=f"emqc blinded judging: {name}")
    st, signer = custody if custody is not None else (None, None)
    widget = JudgingWidget(viewer, session, name, study=st, signer=signer)
    viewer.window.add_dock_widget(widget, name="Blinded judging", area="right")
    napari.run()


@judge.command("unblind")
@click.argument("session", type=click.Path(path_type=Path))
@click.option(
    "--scores",
    multiple=True,
    metavar="ID=DIR",
    help="A sample's emqc score folder, for judge-vs-model agreement (repeat per sample).",
)
@click.option("--out", type=click.Path(path_type=Path), help="Default: SESSION/unblinded.")
@study_options
def judge_unblind(session, scores, out, study, key, reason):  # type: ignore[no-untyped-def]
    """After every judge has locked: reveal the samples and measure agreement."""
    from ..judging import unblind

    custody = open_custody(study, key)
    st, signer = custody if custody is not None else (None, None)
    result = unblind(session, scores=_samples(scores) if scores else None, out=out, study=st,
                     signer=signer)  # fmt: skip
    click.echo(f"unblinded {session} -> {result.out}")
    for q, stats in result.agreement["questions"].items():
        value = stats["krippendorff_alpha"]["value"]
        shown = "n/a" if value is None else f"{value:.2f}"
        click.echo(f"  {q:20s} Krippendorff's alpha {shown}")
    click.echo(f"  files: {', '.join(sorted(result.files))}")
