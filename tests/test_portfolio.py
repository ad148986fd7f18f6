"""The portfolio site: pages, links, escaping, reference numbers, and a render in headless Chromium."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from pipeline.app.site import (
    REPO_ROOT,
    UnitPage,
    build_site,
    figure_title,
    format_value,
    lesson_notes,
    markdown_html,
    notes_from_summary,
    profile_note,
    reproduce_command,
)
from pipeline.audit import AuditReport
from pipeline.data.catalog import DataRef
from pipeline.registry import _write_run_files, log_unit_run
from pipeline.report import UnitReport
from pipeline.units import all_units, get_unit

from conftest import planned_ids

PLANNED, UNBUILT = planned_ids()


@pytest.fixture(autouse=True, scope="module")
def _planned(planned_units):
    """The planned units these tests show, stand-ins where the path has too few."""


X = np.array([[0.0], [1.0], [2.0], [3.0]])
Y = np.array([0, 0, 1, 1])
HOSTILE = '<script>alert("x")</script> & co'
HOSTILE_PATH = "<script>alert(1)</script>.csv"
CAPTION = "The corner <b>matters</b> & so does AUC"
REPORT = ("# The question\n\nDoes it work?\n\n![the matrix](figures/confusion_matrix.png)\n\n"
          "![a tracker](https://example.com/pixel.png) and <b>raw html</b>\n\n## Conclusion\n\nYes.\n")
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--enable-logging=stderr", "--v=0"]


def _png() -> bytes:
    from matplotlib.figure import Figure

    from pipeline.plots import figure_to_png

    fig = Figure(figsize=(2, 2))
    fig.add_subplot().plot([0, 1], [1, 0])
    return figure_to_png(fig)


def _gif() -> bytes:
    import io

    from PIL import Image

    frames = [Image.new("L", (800, 40), shade) for shade in (0, 128, 255)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()


GIF_CAPTION = "Three frames, dark to light: look for the <change>."


def _report(unit: str, value: float, profile: str, *, with_model: bool = True) -> UnitReport:
    audit = AuditReport("PCA vs sklearn.decomposition.PCA")
    audit.add("explained_variance_ratio_", True, "max |diff| = 1.1e-16 (tol 1e-08)")
    audit.add(HOSTILE, False, "a failed <check>")
    return UnitReport(
        unit=unit, primary_metric="test_accuracy", greater_is_better=True,
        params={"profile": profile, "seed": 0, "n_components": 3, "cv_folds": 5,
                "data_files": {"titanic/train.csv": "/data/new batch.csv", "iris/iris.csv": HOSTILE_PATH}},
        metrics={"test_accuracy": value, "explained_variance_ratio_pc1": 0.9246, "cv_accuracy_mean": 0.93},
        data_refs=[DataRef("iris", "0123456789abcdef0123", 150, "scikit-learn", profile)],
        model=LogisticRegression().fit(X, Y) if with_model else None, model_example=X[:2],
        figures={"confusion_matrix": _png(), "roc/curve: test": _png()},
        captions={"roc/curve: test": CAPTION, "not a figure": "a caption with no figure",
                  "anim/progress.gif": GIF_CAPTION},
        files={"anim/progress.gif": _gif(), "notes.bin": b"not an image"},
        tables={f"audit: {audit.subject}": audit.table(),
                "explained variance": pd.DataFrame({"ratio": [0.9246, 0.0531]},
                                                   index=pd.Index(["PC1", "PC2"], name="component"))},
        texts={"printed tree": HOSTILE},
        documents={"report": REPORT},
        notes=f"Selected by **test_f1**: `{HOSTILE}`\n\n- first point\n- second point\n\n"
              "| model | f1 |\n|---|---|\n| tree | *0.81* |\n\n## Which metric?\n\nF1 when <b>positives</b> are rare.")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A site built from three logged runs: unit01 twice (quick v1 champion, then a worse challenger)
    and a planned unit with no model. Module-scoped (the ``fresh_home`` set-up, once): logging is slow."""
    home = tmp_path_factory.mktemp("portfolio") / "home"
    home.mkdir()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLPATH_HOME", str(home))
        env.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
        log_unit_run(_report("unit01", 0.97, "quick"))
        log_unit_run(_report("unit01", 0.95, "quick"))
        log_unit_run(_report(PLANNED, 0.5, "full", with_model=False))
        yield build_site(home / "site")


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.refs += [value for name, value in attrs if name in ("href", "src") and value]


def _links(page: Path) -> _Links:
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def test_index_lists_every_unit_and_links_pages_with_runs(site):
    assert site.name == "index.html"
    index = site.read_text(encoding="utf-8")
    for unit in all_units():
        assert f"<td>{unit.id}</td>" in index
    refs = _links(site).refs
    assert refs == ["units/unit01/index.html", f"units/{PLANNED}/index.html"]
    assert "v1 (newest v2)" in index  # the champion stays v1; the newest is the challenger
    rows = {m.group(1): m.group(0) for m in re.finditer(r"<tr[^>]*><td>(\w+)</td>.*?</tr>", index)}
    assert "no registered run yet" in rows["unit04"]  # built, never run here
    assert "not built yet" in rows[UNBUILT]


def test_every_link_and_image_resolves_offline_and_no_script(site):
    pages = [site, *sorted(site.parent.glob("units/*/index.html"))]
    assert len(pages) == 3
    sources = sorted(site.parent.glob("units/*/source/*.html"))
    assert len(sources) == len(get_unit("unit01").sources)  # a planned unit names none
    for page in pages + sources:
        links = _links(page)
        assert "script" not in links.tags
        for ref in links.refs:
            assert not re.match(r"^[a-z]+:", ref), f"{page}: external or absolute URL {ref}"
            assert (page.parent / ref).is_file(), f"{page}: broken link {ref}"


def test_unit_page_shows_metrics_audit_references_data_and_command(site):
    page = (site.parent / "units/unit01/index.html").read_text(encoding="utf-8")
    # the newest version (v2, a challenger) is the one shown
    assert "v2 (@challenger); champion v1" in page
    assert page.index("<code>test_accuracy</code> (primary)") < page.index("<code>cv_accuracy_mean</code>")
    assert "Comparison with the library twin" in page and "✓ pass" in page and "✗ fail" in page
    assert "Published reference numbers (external)" in page
    assert "0.9246" in page and "Comparison of LDA and PCA 2D projection" in page
    assert "0123456789abcdef" in page and "scikit-learn" in page
    assert ("mlpath run unit01 --profile quick --set data_files.iris/iris.csv='<script>alert(1)</script>.csv' "
            "--set data_files.titanic/train.csv='/data/new batch.csv' --set n_components=3") in html.unescape(page)
    figures = sorted(p.name for p in (site.parent / "units/unit01/figures").iterdir())
    assert figures == ["anim-progress.gif", "confusion-matrix.png", "roc-curve-test.png"]  # not notes.bin
    assert 'alt="Roc-curve: test"' in page  # the registry's file name, as a title
    # the long metrics list comes last, after the figures
    assert page.index("<h2>Figures</h2>") < page.index("<h2>Metrics</h2>") == page.rindex("<h2>")
    notes = page[page.index("<h2>Notes from this run</h2>"):page.index("<h2>Comparison with the library twin</h2>")]
    assert "<ul>\n<li>first point</li>\n<li>second point</li>\n</ul>" in notes
    assert "<td>tree</td>\n<td><em>0.81</em></td>" in notes  # a markdown table, rendered as one
    assert "<h3>Which metric?</h3>" in notes  # under the page's <h2> sections


def test_unit_page_teaches_notes_captions_learned_try_next_and_sources(site):
    unit = get_unit("unit01")
    path = site.parent / "units/unit01/index.html"
    page = path.read_text(encoding="utf-8")
    text = html.unescape(page)
    # the captions, each under its figure, in the report's order (the site's file names differ)
    roc = page.index('src="figures/roc-curve-test.png"')
    assert page.index('src="figures/confusion-matrix.png"') < roc < page.index(html.escape(CAPTION), roc)
    assert "a caption with no figure" not in page
    # an animated GIF logged as a file is a figure too, after the PNGs, with its caption
    gif = page.index('<figure class="wide"><a href="figures/anim-progress.gif"><img src="figures/anim-progress.gif"')
    assert roc < gif < page.index(html.escape(GIF_CAPTION), gif)
    assert (path.parent / "figures/anim-progress.gif").read_bytes()[:6] == b"GIF89a"
    # the lesson notes (docs/unit01_pca.md, its title left out), under the page's sections
    lesson = page[page.index("<h2>Lesson notes</h2>"):page.index("<h2>Notes from this run</h2>")]
    assert "<h3>Covariance: how features vary together</h3>" in lesson
    assert "Linear algebra and PCA from scratch, on Iris" not in lesson
    for point in unit.learned:
        assert point in text
    try_next = text[text.index("What you learned"):text.index("Lesson notes")]
    for experiment in unit.try_next:
        assert experiment.command("unit01") in try_next and experiment.look_for in try_next
    # every source file copied beside the page, escaped, and linked
    refs = _links(path).refs
    for source in unit.sources:
        href = _source_href(source)
        assert href in refs
        copy = (path.parent / href).read_text(encoding="utf-8")
        original = (REPO_ROOT / source).read_text(encoding="utf-8")
        lines = re.findall(r'<span class="line">(.*?)</span>', copy)
        assert [html.unescape(line) for line in lines] == original.splitlines()
    assert "&lt;" in (path.parent / "source/src-pipeline-scratch-pca-py.html").read_text(encoding="utf-8")
    # what the quick profile meant: Iris is used whole
    assert "Quick profile, with the data whole (iris, 150 rows)" in text


def test_report_document_is_on_the_page_with_the_runs_own_figures_only(site):
    page = (site.parent / "units/unit01/index.html").read_text(encoding="utf-8")
    document = page[page.index("<h2>Report</h2>"):page.index("</article>")]
    assert "<h3>The question</h3>" in document and "<h4>Conclusion</h4>" in document
    assert '<img src="figures/confusion-matrix.png" alt="the matrix"' in document
    assert "example.com" not in page and "a tracker" in document  # a foreign image: its alt text only
    assert "<b>raw html</b>" not in document and "&lt;b&gt;raw html&lt;/b&gt;" in document


def test_report_document_is_logged_with_links_to_the_logged_figures(tmp_path):
    from tasks.register import inline_figures

    report = _report("unit01", 0.9, "quick", with_model=False)
    _write_run_files(report, tmp_path)
    logged = (tmp_path / "reports" / "report.md").read_text(encoding="utf-8")
    assert "![the matrix](../figures/confusion_matrix.png)" in logged
    assert (tmp_path / "reports" / "../figures/confusion_matrix.png").is_file()
    inlined = inline_figures(report, "report")  # the Prefect artifact: no files, data URIs
    assert "![the matrix](data:image/png;base64," in inlined and "figures/" not in inlined


def test_a_document_showing_a_missing_figure_fails_before_a_run_is_logged(fresh_home):
    from pipeline.registry import client

    report = _report("unit01", 0.9, "quick", with_model=False)
    report.documents = {"report": "![gone](figures/no_such_figure.png)"}
    with pytest.raises(ValueError, match="no_such_figure"):
        log_unit_run(report)
    experiment = client().get_experiment_by_name("mlpath-unit01")
    assert experiment is None or client().search_runs([experiment.experiment_id]) == []


def _source_href(path: str) -> str:
    return f"source/{re.sub(r'[^a-z0-9]+', '-', path.lower())}.html"


def test_captions_are_logged_beside_the_figures_in_order(tmp_path):
    report = _report("unit01", 0.9, "quick", with_model=False)
    report.figures = {"roc/curve: test": _png(), "confusion_matrix": _png()}
    _write_run_files(report, tmp_path)
    captions = (tmp_path / "figures" / "captions.json").read_text(encoding="utf-8")
    assert list(json.loads(captions).items()) == [("roc-curve: test", CAPTION), ("confusion_matrix", ""),
                                                  ("anim-progress", GIF_CAPTION)]  # a GIF file after the PNGs
    assert {p.stem for p in (tmp_path / "figures").glob("*.png")} == {"roc-curve: test", "confusion_matrix"}


def test_evaluation_figures_come_with_class_names_and_captions():
    from pipeline.evaluation import evaluate

    report = _report("unit04", 0.9, "quick", with_model=False)
    report.figures, report.captions = {}, {}
    result = evaluate(LogisticRegression(), X, Y, X, Y, cv=0)
    report.add_evaluation(result, prefix="tree ", class_names=("died", "survived"))
    assert list(report.figures) == ["tree confusion_matrix", "tree roc_curve"]
    assert "died predicted as survived (false positives)" in report.captions["tree confusion_matrix"]
    assert "top-left corner" in report.captions["tree roc_curve"]


def _page(unit_id: str, profile: str, refs: list[DataRef]) -> UnitPage:
    return UnitPage(get_unit(unit_id), {"profile": profile, "metrics": {}},
                    data_refs=[ref.as_dict() for ref in refs])


def test_profile_note_says_what_quick_meant_for_the_unit():
    iris, titanic = DataRef("iris", "v", 150, "sklearn", "quick"), DataRef("titanic", "v", 891, "mirror", "quick")
    assert profile_note(_page("unit04", "quick", [iris, titanic])) == (
        "Quick profile, with the data whole (iris, 150 rows; titanic, 891 rows) and the same settings as the "
        "full profile: the numbers are the unit's results.")
    note = profile_note(_page("unit07", "quick", [DataRef("mnist", "v", 7000, "mirror", "quick")]))
    assert note.startswith("Quick profile: a subset of the data (mnist, 7,000 rows drawn at random: 6,000 train, "
                           "1,000 test); 10 epochs instead of 20.")
    assert get_unit("unit07").quick in note and "not the unit's result" in note
    assert profile_note(_page("unit07", "full", [DataRef("mnist", "v", 70000, "mirror", "full")])) == ""


def test_built_units_declare_what_they_teach():
    for unit in all_units():
        if not unit.implemented:
            continue
        assert len(unit.learned) >= 3 and unit.try_next, unit.id
        assert unit.sources and all((REPO_ROOT / path).is_file() for path in unit.sources), unit.id
        notes = lesson_notes(unit)
        assert notes and not notes.startswith("# "), unit.id  # found, without the title
    assert figure_title("confusion_matrix") == "Confusion matrix"
    assert figure_title("roc_curve") == figure_title("roc curve") == "ROC curve"


class _Content(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)

    def handle_data(self, data):
        self.text.append(data)


def test_text_from_runs_is_escaped(site):
    for path in site.parent.glob("units/*/index.html"):
        page = path.read_text(encoding="utf-8")
        content = _Content()
        content.feed(page)
        text = "".join(content.text)
        assert not {"script", "check", "b"} & content.tags  # nor the notes' or caption's raw <b>
        # in an audit table cell, a text artifact and the notes' code span: shown, not run
        assert text.count(HOSTILE) == 3 and "<b>positives</b>" in text
        assert CAPTION in text  # a figure's caption
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; co" in page  # Jinja's escaping
    # a parameter value, in the reproduce command
    page = (site.parent / "units/unit01/index.html").read_text(encoding="utf-8")
    assert "data_files.iris/iris.csv=&#39;&lt;script&gt;alert(1)&lt;/script&gt;.csv&#39;" in page


def test_markdown_notes_render_tables_and_emphasis_but_no_html_or_images():
    rendered = markdown_html("*rare* and **f1**\n\n| a | b |\n|---|---|\n| `x` | 1 |\n\n# Title\n\n"
                             "<img src=x onerror=alert(1)> ![plot](https://example.com/p.png)")
    assert "<em>rare</em> and <strong>f1</strong>" in rendered
    assert "<th>a</th>" in rendered and "<td><code>x</code></td>" in rendered
    assert "<h3>Title</h3>" in rendered
    assert "<img" not in rendered and "&lt;img src=x onerror=alert(1)&gt;" in rendered


def test_unit_without_model_gets_its_newest_finished_run(site):
    page = (site.parent / f"units/{PLANNED}/index.html").read_text(encoding="utf-8")
    assert "no model registered" in page and "0.5000" in page
    assert f"mlpath run {PLANNED} --profile full" in page


def test_rebuild_replaces_a_unit_folder(site, monkeypatch):
    stale = site.parent / "units/unit01/figures/stale.png"
    stale.write_bytes(b"old")
    home = site.parent.parent
    monkeypatch.setenv("MLPATH_HOME", str(home))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
    assert build_site(site.parent) == site
    assert not stale.exists()


def test_reference_numbers_name_their_sources():
    for unit in all_units():
        for ref in unit.references:
            assert ref.source and ref.value and "http" not in ref.source


def test_notes_from_summary_and_value_format():
    report = _report("unit01", 0.9, "quick", with_model=False)
    report.notes = "Selected by **test_f1**\n\n## Which metric?\n\nF1 when positives are rare."
    tables = ["audit: PCA vs sklearn.decomposition.PCA", "explained variance"]
    assert notes_from_summary(report.summary_markdown(), tables) == report.notes
    assert notes_from_summary("# unit01\n") == ""
    values = (0.98931, 1.0, 3.0, 150, 60000.0, 1234.56, float("nan"), None, True, "text")
    assert [format_value(v) for v in values] == [
        "0.9893", "1.0000", "3", "150", "60,000", "1,234.6", "—", "—", "True", "text"]


def test_reproduce_command_sets_only_changed_parameters():
    defaults = {"profile": "full", "seed": "0", "max_depth": "4", "data_files": "{}", "cv_folds": "5"}
    assert reproduce_command("unit04", "full", defaults) == "mlpath run unit04 --profile full"
    changed = defaults | {"max_depth": "None", "cv_folds": "10"}
    assert reproduce_command("unit04", "full", changed) == (
        "mlpath run unit04 --profile full --set cv_folds=10 --set max_depth=null")
    assert reproduce_command("capstone", "quick", {"x": "1"}) == "mlpath run capstone --profile quick"


def chromium() -> str:
    """Debian's chromium; installed with apt-get when missing and we are root (as in CI)."""
    if CHROMIUM.exists():
        return str(CHROMIUM)
    if os.geteuid() != 0:
        pytest.fail("headless Chromium is needed: install Debian's `chromium` package "
                    "(sudo apt-get install -y chromium fonts-liberation)")
    quiet = {"env": {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}, "capture_output": True,
             "text": True}
    subprocess.run(["apt-get", "update"], timeout=300, **quiet)
    out = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "chromium", "fonts-liberation"],
                         timeout=900, **quiet)
    if not CHROMIUM.exists():
        pytest.fail(f"apt-get install chromium failed (exit {out.returncode}):\n{out.stderr[-2000:]}")
    return str(CHROMIUM)


def _render(binary: str, page: Path, *action: str) -> subprocess.CompletedProcess:
    profile = tempfile.mkdtemp(prefix="mlpath-chromium-")
    try:
        return subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *action, page.as_uri()],
                              capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@pytest.mark.slow
def test_pages_render_in_headless_chromium(site, tmp_path):
    binary = chromium()
    unit_page = site.parent / "units/unit01/index.html"
    source_page = site.parent / "units/unit01/source/src-pipeline-scratch-pca-py.html"
    doms = {}
    for page in (site, unit_page, source_page):
        dom = _render(binary, page, "--dump-dom")
        assert dom.returncode == 0, dom.stderr[-2000:]
        console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
        assert console == [], f"{page}: console messages:\n" + "\n".join(console)
        assert "mlpath" in dom.stdout
        doms[page] = dom.stdout
        if page == source_page:
            continue
        assert "<table>" in dom.stdout

        shot = tmp_path / f"{page.parent.name}-{page.stem}.png"
        out = _render(binary, page, f"--screenshot={shot}", "--window-size=1200,1600")
        assert out.returncode == 0, out.stderr[-2000:]
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000

    # the unit page as the browser built it: its notes, captions, "Try next" and source links
    content = _Content()
    content.feed(doms[unit_page])
    text = "".join(content.text)
    assert "Lesson notes" in text and "Covariance: how features vary together" in text
    assert CAPTION in text and "What you learned" in text and "Try next" in text
    assert get_unit("unit01").try_next[0].command("unit01") in text
    links = _Links()
    links.feed(doms[unit_page])
    assert {_source_href(path) for path in get_unit("unit01").sources} <= set(links.refs)
    assert "def fit(self" in html.unescape(doms[source_page])  # the copied source, shown as text


def test_markdown_tables_keep_a_pipe_inside_a_cell_as_one_cell():
    from pipeline.app.site import document_html
    from pipeline.report import markdown_table

    table = pd.DataFrame({"P(x | y)": ["P(survived | female)"], "value": [0.742]})
    rendered = document_html(markdown_table(table, floatfmt=".3f"), [])
    assert "<th>P(x | y)</th>" in rendered.replace(' style="text-align:left"', "")
    assert rendered.count("<td") == 2 and "P(survived | female)" in rendered
