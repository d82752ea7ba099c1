"""``emqc.reports.render_report``: HTML and PDF from score folders, escaping, errors, reproducibility."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pypdfium2 as pdfium
import pytest
from scipy import ndimage

import emqc
from emqc.errors import InputError
from emqc.ingest import ingest
from emqc.reports import RenderedReport, SampleInput, read_scores, render_report
from emqc.sampling import BlockList, SamplingParameters, make_blocks
from emqc.sampling.volume import write_block_list
from emqc.scoring import BlockScores, Thresholds, summarize_blocks
from emqc.scoring._run import _write, score_volume
from emqc.sources._array import ArraySource
from emqc.synth import synthetic_neuropil
from emqc.volume import open_volume

BLOCK = (16, 16, 16)
ORIGINS = [[0, 0, 0], [16, 16, 16], [0, 32, 16], [16, 48, 48]]
EVIL = '<script>alert("x")</script> $\\frac$ & co'
SIGNERS = (
    {"name": "Ada Lovelace", "role": "Analyst", "keyid": "ed25519:" + "ab" * 32,
     "meaning": "authored", "time": "2026-12-01T10:05:00Z"},
    {"name": "Grace Hopper", "role": "QA lead", "keyid": "ed25519:" + "cd" * 32,
     "meaning": "approved", "time": "2026-12-01T11:00:00+00:00"},
)  # fmt: skip
LEDGER = {"seq": 7, "hash": "e3" * 32}
PAGES = ("Per-sample summary", "Provenance", "Score distributions", "Sampled blocks: S01",
         "Signature manifest")  # fmt: skip


def intensity_maps(raw, voxel_size_nm):
    """A stand-in predictor (fast, deterministic): dark = boundary, pale = extracellular."""
    img = ndimage.gaussian_filter(raw.astype(np.float32), 1.0)
    return {
        "boundary": np.clip((125 - img) / 40, 0, 1).astype(np.float32),
        "extracellular": np.clip((img - 175) / 30, 0, 1).astype(np.float32),
        "synapse": np.clip((70 - img) / 30, 0, 1).astype(np.float32),
    }


def block_list(volume: str, digest: str, origins, *, seed: int = 3) -> BlockList:
    params = SamplingParameters(
        block_shape_vox=BLOCK, block_shape_um=(0.16, 0.16, 0.16), voxel_size_nm=(10.0, 10.0, 10.0),
        allow_overlap=False, mask_level=0, mask_scale=(1, 1, 1), tissue_mask={},
        mask_tissue_fraction=1.0,
    )  # fmt: skip
    blocks = make_blocks(np.array(origins), block_shape=BLOCK, voxel_size_nm=(10, 10, 10))
    return BlockList(volume, digest, seed, "user", params, blocks)


@pytest.fixture(scope="module")
def scored(tmp_path_factory) -> SimpleNamespace:
    """A tiny ingested volume, a block list of it, and its real ``emqc score`` output."""
    root = tmp_path_factory.mktemp("report-vol")
    image = synthetic_neuropil((32, 64, 64), voxel_size_nm=10.0, seed=9).image
    path = root / "synth.ome.zarr"
    ingest(ArraySource(image, voxel_size_nm=(10, 10, 10), name="synthetic"), path, progress=False)
    vol = open_volume(path)
    blocks = block_list(str(path), vol.root_digest, ORIGINS)
    write_block_list(blocks, root / "blocks.json")
    score_volume(vol, out=root / "scores", blocks=blocks, predict=intensity_maps, progress=False)
    return SimpleNamespace(volume=path, blocks=root / "blocks.json", scores=root / "scores")


def hand_scored(out: Path, values: list[tuple[float, float, float]], *, poor=()) -> Path:
    """A score folder written by emqc's own writer for made-up block scores (no volume)."""
    scores = tuple(
        BlockScores(m, e, s, imaging_quality=0.2 if i in poor else 0.9, too_poor_to_judge=i in poor)
        for i, (m, e, s) in enumerate(values)
    )
    origins = [[0, 0, 16 * i] for i in range(len(values))]
    blocks = block_list("/data/B.ome.zarr", "ab" * 32, origins, seed=11)
    summary = dict(summarize_blocks(scores, thresholds=Thresholds(), seed=11))
    vol = SimpleNamespace(path=Path("/data/B.ome.zarr"), root_digest="ab" * 32)
    _write(out, vol, blocks, scores, summary, Thresholds(), "block-list", {"polarity": "auto"})
    return out


GOOD = [(0.9, 0.05, 0.85), (0.95, 0.1, 0.9), (0.88, 0.02, 0.8), (0.92, 0.0, float("nan")),
        (0.1, 0.9, 0.1)]  # fmt: skip
POOR = [(0.3, 0.6, 0.2), (0.2, 0.7, 0.3), (0.35, 0.5, 0.25), (0.25, 0.65, 0.3), (0.3, 0.6, 0.2)]


@pytest.fixture(scope="module")
def good_dir(tmp_path_factory) -> Path:
    return hand_scored(tmp_path_factory.mktemp("good") / "scores", GOOD, poor=(4,))


def render(out: Path, samples, **kwargs) -> RenderedReport:
    kwargs = {"title": "Fixation study report", "study": "Pilot <Fix> & $1", "created":
              "2026-12-01T12:00:00Z", "signers": SIGNERS, "ledger_head": LEDGER, **kwargs}  # fmt: skip
    return render_report(samples, out, **kwargs)


@pytest.fixture(scope="module")
def report(scored, good_dir, tmp_path_factory) -> RenderedReport:
    samples = [SampleInput("S01", scored.scores, scored.volume, scored.blocks),
               SampleInput(EVIL, good_dir)]  # fmt: skip
    extra = [("Judge agreement", "Cohen's kappa 0.81 <b>\n\nSecond paragraph.")]
    return render(tmp_path_factory.mktemp("report") / "out", samples, extra_sections=extra)


def pages(pdf: Path) -> list[tuple[str, np.ndarray]]:
    """Each page's text and its greyscale rendering."""
    doc = pdfium.PdfDocument(pdf)
    try:
        return [(p.get_textpage().get_text_range(), np.asarray(p.render(scale=1).to_pil().convert("L"),
                                                               dtype=float))
                for p in doc]  # fmt: skip
    finally:
        doc.close()


def test_html_shows_samples_scores_signers_and_escapes(report, scored):
    page = report.html.read_text(encoding="utf-8")
    assert report.html.parent == report.pdf.parent and report.pdf.name == "report.pdf"
    assert "S01" in page and "<script>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; $\\frac$ &amp; co" in page
    assert "Pilot &lt;Fix&gt; &amp; $1" in page and "Cohen&#x27;s kappa 0.81 &lt;b&gt;" in page
    for label in ("Membrane integrity", "Edema", "Synapse traceability"):
        assert label in page
    for s in SIGNERS:
        assert s["name"] in page and s["meaning"] in page and s["keyid"] in page
    assert "2026-12-01 11:00:00 UTC" in page and f"emqc version</dt><dd>{emqc.__version__}" in page
    assert "Custody ledger head" in page and LEDGER["hash"] in page
    summary = json.loads((scored.scores / "summary.json").read_text())
    digest = summary["models"]["fibsem3d"]["sha256"]
    assert f"fibsem3d {digest[:8]}…" in page and digest in page  # short in the table, full below
    # the made-up sample: block 5 too poor to judge, block 4 without a synapse score
    assert re.search(r"Synapse traceability</td>(<td[^>]*>[^<]*</td>){5}<td[^>]*>3 / 2<", page)
    assert re.search(r"Membrane integrity</td>(<td[^>]*>[^<]*</td>){5}<td[^>]*>4 / 1<", page)
    # every figure the page links lies beside it, and nothing else is listed
    linked = re.findall(r'<img src="([^"]+)"', page)
    assert linked == [f.name for f in report.figures] and len(linked) == 2
    assert all(f.is_file() and re.fullmatch(r"[A-Za-z0-9_.-]+", f.name) for f in report.figures)
    assert not [p for p in report.html.parent.iterdir() if p.name.startswith(".")]  # no temp files


def test_pdf_pages_hold_the_summary_plots_montage_and_signatures(report):
    got = pages(report.pdf)
    assert len(got) == len(PAGES)
    for (text, _), heading in zip(got, PAGES, strict=True):
        assert heading in text
    assert "Fixation study report" in got[0][0] and "Synapse traceability" in got[0][0]
    assert EVIL[:14] in got[0][0] and "page 1 of 5" in got[0][0]  # wrapped in its column
    assert all(s["name"] in got[4][0] and s["meaning"] in got[4][0] for s in SIGNERS)
    assert LEDGER["hash"] in got[4][0] and "Judge agreement" in got[4][0]
    h = got[2][1].shape[0]
    plots, montage = got[2][1][h // 6 : h * 9 // 10], got[3][1][h // 6 : h * 9 // 10]
    assert plots.std() > 20 and montage.std() > 20  # drawn, not blank
    assert got[4][1][h // 2 : h * 9 // 10].std() < 1  # below the signatures: empty


def test_same_inputs_same_bytes_and_other_scores_other_plots(report, scored, good_dir, tmp_path):
    samples = [SampleInput("S01", scored.scores, scored.volume, scored.blocks),
               SampleInput(EVIL, good_dir)]  # fmt: skip
    extra = [("Judge agreement", "Cohen's kappa 0.81 <b>\n\nSecond paragraph.")]
    again = render(tmp_path / "again", samples, extra_sections=extra)
    for a, b in [(report.html, again.html), (report.pdf, again.pdf),
                 *zip(report.figures, again.figures, strict=True)]:  # fmt: skip
        assert a.read_bytes() == b.read_bytes(), a.name

    poor = hand_scored(tmp_path / "poor", POOR)
    other = render(tmp_path / "other", [samples[0], SampleInput(EVIL, poor)], extra_sections=extra)
    assert other.figures[0].read_bytes() != report.figures[0].read_bytes()  # fig_scores.png
    assert not np.array_equal(pages(other.pdf)[2][1], pages(report.pdf)[2][1])
    assert "poor" in read_scores("x", poor).summary["scores"]["membrane_integrity"]["verdict"]


def test_montage_from_parquet_positions_matches_the_block_list(report, scored, tmp_path):
    got = render(tmp_path / "r", [SampleInput("S01", scored.scores, scored.volume)], signers=())
    assert [f.name for f in got.figures] == ["fig_scores.png", "fig_montage_01_S01.png"]
    assert got.figures[1].read_bytes() == report.figures[1].read_bytes()
    assert "positions from blocks.parquet" in got.html.read_text(encoding="utf-8")
    assert "No signatures are recorded" in pages(got.pdf)[-1][0]


def test_missing_summary_names_the_path(tmp_path):
    with pytest.raises(InputError) as err:
        render(tmp_path / "r", [SampleInput("S01", tmp_path / "nowhere")])
    assert str(tmp_path / "nowhere" / "summary.json") in err.value.message
    assert "emqc score" in err.value.message
    assert not (tmp_path / "r" / "report.pdf").exists()


def test_bad_score_folders_are_refused_with_the_file_named(good_dir, tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    doc = json.loads((good_dir / "summary.json").read_text())
    (folder / "summary.json").write_text(json.dumps({**doc, "format": "emqc.score-summary/9"}))
    with pytest.raises(InputError, match=r"format 'emqc.score-summary/9'.*emqc score"):
        read_scores("S", folder)
    (folder / "summary.json").write_text(json.dumps(doc))
    (folder / "blocks.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(InputError, match=r"blocks\.parquet is not a readable Parquet table"):
        read_scores("S", folder)
    (folder / "blocks.parquet").write_bytes((good_dir / "blocks.parquet").read_bytes())
    (folder / "summary.json").write_text(json.dumps({**doc, "n_blocks": 3}))
    with pytest.raises(InputError, match="different runs"):
        read_scores("S", folder)
    (folder / "summary.json").write_text("{not json")
    with pytest.raises(InputError, match=re.escape(str(folder / "summary.json"))):
        read_scores("S", folder)


def test_a_block_list_or_volume_other_than_the_scored_one_is_refused(scored, good_dir, tmp_path):
    vol = open_volume(scored.volume)
    other = tmp_path / "other.json"
    write_block_list(block_list(str(scored.volume), vol.root_digest, ORIGINS[:2]), other)
    with pytest.raises(InputError, match="is not the one scored"):
        render(tmp_path / "r", [SampleInput("S01", scored.scores, scored.volume, other)])
    with pytest.raises(InputError, match="is not the volume scored"):
        render(tmp_path / "r", [SampleInput("B", good_dir, scored.volume)])


@pytest.mark.parametrize(
    ("change", "match"),
    [({"meaning": "signed"}, "meaning must be one of"),
     ({"time": "2026-12-01T10:00:00+02:00"}, "must be in UTC"),
     ({"time": "yesterday"}, "ISO 8601"),
     ({"name": ""}, "lacks")],
)  # fmt: skip
def test_bad_signers_are_refused(good_dir, tmp_path, change, match):
    with pytest.raises(InputError, match=match):
        render(tmp_path / "r", [SampleInput("B", good_dir)], signers=[{**SIGNERS[0], **change}])


def test_bad_arguments_are_refused(good_dir, tmp_path):
    with pytest.raises(InputError, match="unique"):
        render(tmp_path / "r", [SampleInput("B", good_dir), SampleInput("B", good_dir)])
    with pytest.raises(InputError, match="no samples"):
        render(tmp_path / "r", [])
    with pytest.raises(InputError, match="ledger_head"):
        render(tmp_path / "r", [SampleInput("B", good_dir)], ledger_head={"seq": "7"})


def test_an_interrupted_render_leaves_no_report_pdf(good_dir, tmp_path, monkeypatch):
    import emqc.reports._figures as figures

    def crash(content, path):
        path.write_bytes(b"%PDF-1.4 half")
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(figures, "write_pdf", crash)
    with pytest.raises(RuntimeError, match="disk on fire"):
        render(tmp_path / "r", [SampleInput("B", good_dir)])
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == []
