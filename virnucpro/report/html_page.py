"""Pages of tables in HTML, for the Snakemake report, which shows an HTML file in place but
offers a table or text file only as a download."""

import csv
import html

from ..io.atomic import atomic_open

_STYLE = (
    "body{font-family:sans-serif;font-size:14px;margin:1em}"
    "table{border-collapse:collapse;margin-bottom:1em}"
    "th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}"
    "th{background:#f2f2f2;position:sticky;top:0}pre{background:#f8f8f8;padding:8px;white-space:pre-wrap}"
    ".warning{color:#b00000;font-weight:bold}input{width:30em;margin:0.5em 0 1em}"
)
# what a filter box does: hide the rows of the page's tables that do not hold its text
_FILTER = (
    "<script>document.getElementById('filter').addEventListener('input',function(){"
    "const text=this.value.toLowerCase();"
    "for(const row of document.querySelectorAll('tbody tr')){"
    "row.hidden=text!==''&&!row.textContent.toLowerCase().includes(text);}});</script>"
)


def table(header, rows):
    """An HTML table of `header` and `rows` (any values, as text), escaped."""
    head = "".join(f"<th>{html.escape(str(name))}</th>" for name in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(value))}</td>" for value in row) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def filter_box(placeholder):
    """A text box that filters the rows of every table of its page."""
    return f"<input id='filter' type='search' placeholder='{html.escape(placeholder)}'>" + _FILTER


def heading(text, level=2):
    return f"<h{level}>{html.escape(text)}</h{level}>"


def paragraph(text, warning=False):
    return f"<p{' class=warning' if warning else ''}>{html.escape(text)}</p>"


def preformatted(text):
    return f"<pre>{html.escape(text)}</pre>"


def write_page(path, title, parts):
    """Write an HTML page of `title` and `parts` (HTML made by this module's functions)."""
    with atomic_open(path) as handle:
        handle.write(
            "\n".join(
                [
                    "<!DOCTYPE html><html><head><meta charset='utf-8'>",
                    f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
                    *parts,
                    "</body></html>\n",
                ]
            )
        )


def write_table_page(tsv, path, title):
    """Write a table (tables.tsv_writer's dialect) as a page of `title`."""
    with open(tsv, newline="", encoding="utf-8") as handle:
        header, *rows = csv.reader(handle, delimiter="\t")
    write_page(path, title, [heading(title), table(header, rows)])
