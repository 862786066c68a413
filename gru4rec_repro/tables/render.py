"""Rendering a :class:`~gru4rec_repro.tables.common.Table` as md, csv, tex and notes text."""
from __future__ import annotations

import logging
from pathlib import Path

from tabulate import tabulate

from .. import atomic
from .common import Table

log = logging.getLogger(__name__)

_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
          "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
          "^": r"\textasciicircum{}", "±": r"$\pm$", "<": r"\textless{}", ">": r"\textgreater{}",
          "|": r"\textbar{}"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX.get(ch, ch) for ch in text)


def render(table: Table) -> dict[str, str]:
    """The md, tex, csv and notes texts of a table."""
    headers = list(table.display.columns)
    rows = table.display.astype(str).values.tolist()
    md = tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)
    tex = tabulate(rows, headers=headers, tablefmt="latex_booktabs", disable_numparse=True)
    notes_md = "\n".join(f"- {n}" for n in table.notes)
    notes_tex = "\n".join(f"\\par\\noindent {latex_escape(n)}" for n in table.notes)
    return {
        "md": f"## {table.name}\n\n{md}\n\n{notes_md}\n",
        "tex": f"% table {table.name}\n{tex}\n\n{{\\footnotesize\n{notes_tex}\n}}\n",
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
