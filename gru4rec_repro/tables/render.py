"""Rendering a :class:`~gru4rec_repro.tables.common.Table` as md, csv, tex and notes text.

* ``<name>.md``: a heading, the display as a GitHub table, the notes as a list;
* ``<name>.csv``: the numeric data;
* ``<name>.tex``: complete LaTeX ``table`` environments a paper can ``\\input``
  (a long table is split into several, each fitting a page):
  caption, ``\\label{tab:<name>}``, booktabs rules, label columns left-aligned
  and number columns right-aligned, headers broken over lines, shrunk to the
  line width only when wider (box 0 measured, then ``\\resizebox`` of graphicx), the notes below
  in ``\\scriptsize`` (notes longer than NOTES_CHARS_WITH_ROWS characters in floats of
  their own, "Notes to Table ...", each fitting a page). Needs ``\\usepackage{booktabs,graphicx}``;
* ``<name>.notes.txt``: the notes, one per line.
"""
from __future__ import annotations

import logging
import textwrap
from pathlib import Path

from tabulate import tabulate

from .. import atomic
from .common import Table

log = logging.getLogger(__name__)

_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
          "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
          "^": r"\textasciicircum{}", "±": r"$\pm$", "<": r"\textless{}", ">": r"\textgreater{}",
          "|": r"\textbar{}", "≈": r"$\approx$", "–": r"--", "—": r"---", "≤": r"$\leq$",
          "≥": r"$\geq$", "×": r"$\times$", "→": r"$\rightarrow$", "−": r"$-$"}
#: Header lines are broken at spaces to at most this many characters.
HEADER_WIDTH = 16


def latex_escape(text: str) -> str:
    """Text -> LaTeX source (special characters escaped; the few non-ASCII symbols the
    tables use mapped to commands). Any other non-ASCII character is an error."""
    out = []
    for ch in str(text):
        if ch in _LATEX:
            out.append(_LATEX[ch])
        elif ord(ch) > 127:
            raise ValueError(f"latex_escape: no LaTeX form for {ch!r} in {text!r}; add it to _LATEX")
        else:
            out.append(ch)
    return "".join(out)


def _header(text: str, align: str) -> str:
    lines = textwrap.wrap(str(text), HEADER_WIDTH, break_long_words=False) or [""]
    if len(lines) == 1:
        return latex_escape(lines[0])
    body = r" \\\relax ".join(latex_escape(x) for x in lines)  # \relax: a "[" may follow
    return rf"\begin{{tabular}}[b]{{@{{}}{align}@{{}}}}{body}\end{{tabular}}"


#: A table with more value columns than this is split into panels stacked vertically.
MAX_VALUE_COLUMNS = 6
#: At most this many table rows (all panels together) in one float, so each fits a page.
MAX_ROWS_PER_FLOAT = 36
#: Notes of at most this many characters stay in the table's last float; longer ones go into
#: floats of their own ("Notes to Table ..."), at most NOTES_CHARS_PER_FLOAT characters each
#: (with the 2 cm margins of test_latex's minimal article, 6,000 overflowed a page).
NOTES_CHARS_WITH_ROWS = 1500
NOTES_CHARS_PER_FLOAT = 4000
#: Label cells longer than this many characters are wrapped in a paragraph box.
WRAP_LABEL = 26
WRAP_WIDTH = "2.8cm"


def _prefix(header: str) -> str:
    """The metric a value column belongs to ("R@20 paper" -> "R@20"); "" when none."""
    first = str(header).split(" ", 1)[0]
    return first if "@" in first else ""


def panels(headers: list[str], n_label: int) -> list[tuple[str, list[int]]]:
    """Split the value columns into panels of at most MAX_VALUE_COLUMNS columns.

    Columns are grouped by their metric prefix (consecutive groups packed
    together while they fit; columns without a prefix join the first panel).
    Returns (title, column indices) per panel; title is the prefix when the
    panel holds one group only, else "".
    """
    values = list(range(n_label, len(headers)))
    if len(values) <= MAX_VALUE_COLUMNS:
        return [("", values)]
    groups: dict[str, list[int]] = {}
    for i in values:
        groups.setdefault(_prefix(headers[i]), []).append(i)
    plain = groups.pop("", [])
    out: list[tuple[list[str], list[int]]] = []
    for key, cols in groups.items():
        if out and len(out[-1][1]) + len(cols) <= MAX_VALUE_COLUMNS:
            out[-1][0].append(key)
            out[-1][1].extend(cols)
        else:
            out.append(([key], list(cols)))
    if not out:
        return [("", values)]
    out[0] = (out[0][0], sorted(plain + out[0][1]))
    return [(keys[0] if len(keys) == 1 else "", cols) for keys, cols in out]


def _cell(text: str, is_label: bool) -> str:
    body = latex_escape(text)
    if is_label and len(text) > WRAP_LABEL:
        return rf"\parbox[t]{{{WRAP_WIDTH}}}{{\raggedright {body}}}"
    if body.startswith("["):
        body = "{}" + body  # not an optional argument of the \\ before it
    return body


def _tabular(table: Table, rows: list[list[str]], cols: list[int], n_label: int, strip: str) -> list[str]:
    headers = list(table.display.columns)
    use = list(range(n_label)) + cols
    aligns = ["l" if i < n_label else "r" for i in use]
    names = [headers[i][len(strip):].strip() if strip and i >= n_label else headers[i] for i in use]
    lines = [r"\setbox0=\hbox{%", rf"\begin{{tabular}}{{{''.join(aligns) or 'l'}}}", r"\toprule",
             " & ".join(_header(h, a) for h, a in zip(names, aligns)) + r" \\", r"\midrule"]
    for row in rows:
        lines.append(" & ".join(_cell(row[i], i < n_label) for i in use) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}}",
              r"\ifdim\wd0>\linewidth\resizebox{\linewidth}{!}{\usebox0}\else\usebox0\fi"]
    return lines


def to_latex(table: Table) -> str:
    """The table as complete LaTeX ``table`` environments (see the module docstring).

    A table with more than MAX_ROWS_PER_FLOAT rows (counting every panel) is
    split into several ``table`` environments, each fitting a page: the first
    has the caption and ``\\label{tab:<name>}``, the others "(continued)" and
    ``tab:<name>-2``, ...; the notes follow the last one.
    """
    headers = list(table.display.columns)
    n_label = max(0, min(table.label_columns, len(headers)))
    caption = table.caption or f"Table {table.name}."
    parts = panels(headers, n_label)
    rows = table.display.astype(str).values.tolist()
    per_float = max(1, MAX_ROWS_PER_FLOAT // len(parts))
    chunks = [rows[i:i + per_float] for i in range(0, len(rows), per_float)] or [[]]
    note_floats = _note_groups(list(table.notes), NOTES_CHARS_PER_FLOAT)
    notes_here = False
    lines = [f"% table {table.name}, generated by gru4rec_repro.tables; needs booktabs and graphicx"]
    for c, chunk in enumerate(chunks):
        first, last = c == 0, c == len(chunks) - 1
        lines += [
            r"\begin{table}[htbp]",
            r"\centering",
            rf"\caption{{{latex_escape(caption if first else caption + ' (continued)')}}}",
            rf"\label{{tab:{table.name}{'' if first else f'-{c + 1}'}}}",
            r"\footnotesize\setlength{\tabcolsep}{3pt}",
        ]
        for title, cols in parts:
            if len(parts) > 1:
                what = title or ", ".join(dict.fromkeys(
                    p for p in map(_prefix, (headers[i] for i in cols)) if p))
                lines.append(rf"\par\smallskip\textit{{{latex_escape(what or 'continued')}}}\par\nopagebreak")
            lines += _tabular(table, chunk, cols, n_label, title)
        notes_here = last and len(note_floats) <= 1 and sum(map(len, table.notes)) <= NOTES_CHARS_WITH_ROWS
        if notes_here:
            lines += _notes(note_floats[0] if note_floats else [])
        lines.append(r"\end{table}")
    if not notes_here:  # long notes: floats of their own, each fitting a page
        for k, group in enumerate(note_floats):
            more = "" if k == 0 else " (continued)"
            lines += [r"\begin{table}[htbp]",
                      rf"\par\textit{{Notes to Table~\ref{{tab:{table.name}}}{more}.}}\par"]
            lines += _notes(group)
            lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def _notes(notes: list[str]) -> list[str]:
    return ([r"\par\smallskip", r"\begin{minipage}{\linewidth}", r"\scriptsize\raggedright"]
            + [rf"\par {latex_escape(n)}" for n in notes] + [r"\end{minipage}"])


def _note_groups(notes: list[str], budget: int) -> list[list[str]]:
    """The notes in consecutive groups of at most ``budget`` characters (a note longer than
    that is a group of its own)."""
    groups: list[list[str]] = []
    size = budget + 1
    for n in notes:
        if size + len(n) > budget:
            groups.append([])
            size = 0
        groups[-1].append(n)
        size += len(n)
    return groups


def render(table: Table) -> dict[str, str]:
    """The md, tex, csv and notes texts of a table."""
    headers = list(table.display.columns)
    rows = table.display.astype(str).values.tolist()
    md = tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)
    notes_md = "\n".join(f"- {n}" for n in table.notes)
    caption = f"{table.caption}\n\n" if table.caption else ""
    return {
        "md": f"## {table.name}\n\n{caption}{md}\n\n{notes_md}\n",
        "tex": to_latex(table),
        "csv": table.data.to_csv(index=False),
        "notes.txt": "\n".join(table.notes) + "\n",
    }


def write_table(table: Table, outdir) -> dict[str, Path]:
    """Write <outdir>/<name>.{md,tex,csv,notes.txt}, each atomically."""
    outdir = Path(outdir)
    paths = {}
    for ext, text in render(table).items():
        path = outdir / f"{table.name}.{ext}"
        atomic.write_text(text, path)
        paths[ext] = path
    log.info("wrote table %s to %s", table.name, outdir)
    return paths
