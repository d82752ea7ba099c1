"""``emqc keys``, ``emqc custody`` and ``emqc report``: who did what, and signed reports."""

from __future__ import annotations

import os
from pathlib import Path

import click

from . import cli
from ._options import open_custody

_STUDY = click.option(
    "--study",
    type=click.Path(path_type=Path),
    envvar="EMQC_STUDY",
    required=True,
    help="Study folder (default: $EMQC_STUDY).",
)


def _default_key_path(name: str) -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "emqc" / "keys" / f"{name}.key"


@cli.group()
def keys() -> None:
    """Signing keys of the people who act on a study."""


@keys.command("new")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(["operator", "judge", "auditor"]),
    default="operator",
    show_default=True,
)
@_STUDY
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Private key file (default: ~/.config/emqc/keys/NAME.key).",
)
@click.option(
    "--passphrase/--no-passphrase",
    default=False,
    help="Encrypt the private key with a passphrase (prompted, or $EMQC_KEY_PASSPHRASE).",
)
def keys_new(name, role, study, out, passphrase):  # type: ignore[no-untyped-def]
    """Create an Ed25519 key pair for NAME and register its public key in the study."""
    from ..custody import Study, new_key

    s = Study.open(study, create=True)
    secret = None
    if passphrase:
        secret = os.environ.get("EMQC_KEY_PASSPHRASE") or click.prompt(
            "passphrase", hide_input=True, confirmation_prompt=True
        )
    path = out or _default_key_path(name)
    signer = new_key(name, role, registry=s.registry, key_path=path, passphrase=secret)
    s.record(
        signer,
        "key.register",
        reason=f"new {role} key",
        params={"name": name, "role": role, "keyid": signer.keyid},
    )
    click.echo(
        f"created key {name} ({role})\n  private key  {path} (mode 600"
        + (", encrypted" if secret else "")
        + f")\n  key id       {signer.keyid}\n  registry     {s.registry.path}\n"
        "Give the key id to whoever will verify your signatures."
    )


@keys.command("list")
@_STUDY
def keys_list(study):  # type: ignore[no-untyped-def]
    """List the study's registered keys and revocations."""
    from ..custody import Study

    reg = Study.open(study).registry
    for k in sorted(reg.keys.values(), key=lambda k: k.created):
        rev = reg.revocations.get(k.keyid)
        state = f"REVOKED from {rev.revoked_from} ({rev.reason})" if rev else "active"
        click.echo(f"{k.name:16s} {k.role:9s} {k.keyid}  created {k.created}  {state}")
    for p in reg.problems:
        click.echo(f"problem: {p}", err=True)


@keys.command("revoke")
@click.argument("name")
@_STUDY
@click.option("--reason", required=True, help="Why the key is revoked.")
@click.option("--from", "revoked_from", help="UTC time from which it is revoked (default: now).")
@click.option(
    "--key",
    type=click.Path(path_type=Path),
    envvar="EMQC_KEY",
    help="Key signing the revocation: the key itself or an auditor's.",
)
def keys_revoke(name, study, reason, revoked_from, key):  # type: ignore[no-untyped-def]
    """Revoke NAME's key: its signatures from that time on fail verification."""
    s, signer = open_custody(study, key)
    target = s.registry.by_name(name)
    rev = s.registry.revoke(target.keyid, signer, reason=reason, revoked_from=revoked_from)
    s.record(
        signer,
        "key.revoke",
        reason=reason,
        params={"name": name, "keyid": target.keyid, "from": rev.revoked_from},
    )
    click.echo(f"revoked {target.short} from {rev.revoked_from}: {reason}")


@cli.group()
def custody() -> None:
    """The study's custody ledger: print, export, verify."""


@custody.command("log")
@_STUDY
def custody_log(study):  # type: ignore[no-untyped-def]
    """Print the trail: one line per event (who, what, when, why)."""
    from ..custody import Study

    for ev in Study.open(study).ledger.events():
        f = ev.fields
        what = ", ".join(o["name"] for o in f["objects"])
        why = f" -- {f['reason']}" if f["reason"] else ""
        click.echo(
            f"#{f['seq']:<5d} {f['time']}  {f['actor']} ({f['role']})  {f['action']}"
            f"{' ' + what if what else ''}{why}"
        )


@custody.command("export")
@_STUDY
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv")
@click.option("--out", type=click.Path(path_type=Path), help="File to write (default: stdout).")
def custody_export(study, fmt, out):  # type: ignore[no-untyped-def]
    """A complete, human-readable copy of every event, with hashes and signatures."""
    from ..custody import Study, export_events

    text = export_events(Study.open(study).ledger.events(), fmt)
    if out is None:
        click.echo(text, nl=False)
    else:
        tmp = Path(out).with_name(f".{Path(out).name}.partial")
        tmp.write_text(text)
        os.replace(tmp, out)
        click.echo(f"wrote {out}")


@custody.command("verify")
@_STUDY
def custody_verify(study):  # type: ignore[no-untyped-def]
    """Check the ledger's chain, hashes and signatures and the key registry."""
    from ..custody import Study
    from ..errors import TamperError

    s = Study.open(study)
    reg = s.registry
    problems = reg.problems + s.ledger.verify(reg)
    if problems:
        raise TamperError(f"{s.root}: {len(problems)} problem(s)\n  " + "\n  ".join(problems))
    head = s.ledger.head()
    click.echo(
        f"OK {s.ledger.path}: {head['seq']} events, chain and signatures intact; "
        f"head sha256:{head['hash']}"
    )


@cli.command()
@_STUDY
@click.option(
    "--sign",
    "sign",
    type=click.Path(path_type=Path),
    multiple=True,
    required=True,
    help="Private key of a signer (repeat for several signers).",
)
@click.option(
    "--meaning",
    type=click.Choice(["authored", "reviewed", "approved"]),
    multiple=True,
    required=True,
    help="Meaning of each --sign, in the same order.",
)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Report folder.")
@click.option("--title", default="Preservation report", show_default=True)
@click.option("--reason", default="", help="Why the report is issued (recorded).")
def report(study, sign, meaning, out, title, reason):  # type: ignore[no-untyped-def]
    """Write a signed report (HTML, PDF, attestation) of what the study scored."""
    from ..custody import export_report, verify_report

    if len(sign) != len(meaning):
        raise click.UsageError("give one --meaning for each --sign, in the same order")
    signers = []
    for key, m in zip(sign, meaning, strict=True):
        s, signer = open_custody(study, key)
        signers.append((signer, m))
    done = export_report(s, out, signers, title=title, reason=reason)
    checked = verify_report(done.out)
    checked.raise_for_problems()
    click.echo(
        f"wrote signed report {done.out}\n  PDF          {done.pdf}\n  HTML         {done.html}\n"
        f"  attestation  {done.envelope}\n  samples      {', '.join(done.samples)}\n"
        f"  verified     `emqc verify {done.out} --data {s.root}` re-checks it offline"
    )
