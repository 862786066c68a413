"""Every generated table's .tex compiles with pdflatex in a minimal document and fits the page.

The tables are built from the hand-made results folder of test_tables.py. The
document loads only booktabs and graphicx (what the .tex files say they need)
on top of the standard article class. Skipped, with the reason, where pdflatex
is not installed (.ci/run installs texlive-latex-base and
texlive-latex-recommended with apt-get).
"""
import re
import shutil
import subprocess

import pytest

from gru4rec_repro import tables
from gru4rec_repro.tables.common import Table
from gru4rec_repro.tables.render import latex_escape, to_latex
from test_tables import config, make_results

PDFLATEX = shutil.which("pdflatex")
needs_pdflatex = pytest.mark.skipif(
    PDFLATEX is None,
    reason="pdflatex is not installed (apt-get install texlive-latex-base texlive-latex-recommended)",
)

DOCUMENT = r"""\documentclass{article}
\usepackage{booktabs}
\usepackage{graphicx}
\begin{document}
\input{%s}
\end{document}
"""


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("latex")
    results = make_results(root / "tiny")
    tables.write_tables(results, config(), "tiny", root / "tables")
    return root / "tables"


def compile_tex(tex_path, workdir):
    (workdir / "doc.tex").write_text(DOCUMENT % tex_path.as_posix())
    proc = subprocess.run(
        [PDFLATEX, "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
        cwd=workdir, capture_output=True, text=True, timeout=120,
    )
    log = (workdir / "doc.log").read_text(errors="replace") if (workdir / "doc.log").exists() else ""
    return proc.returncode, log + proc.stdout


@needs_pdflatex
@pytest.mark.parametrize("name", tables.TABLES)
def test_table_compiles_and_fits_the_page(written, tmp_path, name):
    tex = written / f"{name}.tex"
    text = tex.read_text()
    assert text.count(r"\begin{table}") == text.count(r"\end{table}") >= 1
    assert rf"\label{{tab:{name}}}" in text and r"\caption{" in text
    assert r"\toprule" in text and r"\midrule" in text and r"\bottomrule" in text
    rc, log = compile_tex(tex, tmp_path)
    assert rc == 0, log[-3000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 0
    overfull = re.findall(r"Overfull \\hbox \((\d+\.?\d*)pt too wide\)", log)
    assert not [w for w in overfull if float(w) > 1.0], f"{name}: wider than the text: {overfull}"
    assert "Float too large for page" not in log, f"{name}: taller than a page"


def test_numbers_are_right_aligned_and_labels_left():
    import pandas as pd

    t = Table("x", pd.DataFrame(), pd.DataFrame({"Run": ["a_b"], "Metric": ["R@20"], "Value": ["0.5 ± 0.1"]}),
              ["note 50%"], caption="A caption", label_columns=2)
    tex = to_latex(t)
    assert r"\begin{tabular}{llr}" in tex
    assert r"a\_b & R@20 & 0.5 $\pm$ 0.1 \\" in tex
    assert r"note 50\%" in tex and r"\caption{A caption}" in tex


def test_latex_escape_refuses_unknown_symbols():
    assert latex_escape("≈ 5% & x_1") == r"$\approx$ 5\% \& x\_1"
    with pytest.raises(ValueError, match="no LaTeX form"):
        latex_escape("☃")


@needs_pdflatex
def test_long_table_is_split_into_floats_that_fit(tmp_path):
    import pandas as pd

    n = 120
    display = pd.DataFrame({"Run": [f"run-{i}" for i in range(n)], "Metric": ["R@20"] * n,
                            **{f"p{j}": [f"0.{i:04d}" for i in range(n)] for j in range(7)}})
    t = Table("long", pd.DataFrame(), display, ["a note"] * 10, caption="A long table", label_columns=2)
    tex = to_latex(t)
    assert tex.count(r"\begin{table}") == 4 and r"\label{tab:long}" in tex and r"\label{tab:long-4}" in tex
    assert tex.count("a note") == 10 and "(continued)" in tex
    (tmp_path / "long.tex").write_text(tex)
    rc, log = compile_tex(tmp_path / "long.tex", tmp_path)
    assert rc == 0, log[-3000:]
    assert "Float too large for page" not in log and "Overfull \\hbox" not in log


def test_long_notes_go_into_floats_of_their_own():
    import pandas as pd

    display = pd.DataFrame({"Run": ["a"], "Value": ["0.5"]})
    short = to_latex(Table("s", pd.DataFrame(), display, ["a short note"], label_columns=1))
    assert short.count(r"\begin{table}") == 1 and "Notes to Table" not in short
    notes = [f"note {i}: " + "x" * 990 for i in range(13)]  # 13,000+ characters: four note floats
    tex = to_latex(Table("n", pd.DataFrame(), display, notes, label_columns=1))
    floats = tex.split(r"\begin{table}")[1:]
    assert len(floats) == 5 and r"\label{tab:n}" in floats[0] and "note 0" not in floats[0]
    assert all(r"Notes to Table~\ref{tab:n}" in f for f in floats[1:]) and "(continued)" in floats[2]
    assert all(sum(len(line) for line in f.splitlines() if line.startswith(r"\par note")) <= 4100
               for f in floats[1:])
    assert [n for n in notes if n.replace("_", r"\_") not in tex] == []


@needs_pdflatex
def test_long_notes_fit_the_page(tmp_path):
    import pandas as pd

    notes = [f"note {i}: " + "word " * 190 for i in range(14)]
    t = Table("n", pd.DataFrame(), pd.DataFrame({"Run": ["a"], "Value": ["0.5"]}), notes, label_columns=1)
    (tmp_path / "n.tex").write_text(to_latex(t))
    rc, log = compile_tex(tmp_path / "n.tex", tmp_path)
    assert rc == 0, log[-3000:]
    assert "Float too large for page" not in log
