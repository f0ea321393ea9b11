"""Render a transparency report as JSON, CSV or one self-contained HTML page.

The HTML page needs nothing else: inline CSS, inline SVG charts (each with a
title and a description for screen readers), no scripts, no fetches.
"""

from __future__ import annotations

import csv
import functools
import io
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from gateway.reports.transparency import COUNTS, OUTCOMES, SKIPPED_SHOWN, Row, TransparencyReport

FORMATS = ("json", "csv", "html")
MEDIA_TYPES = {"json": "application/json", "csv": "text/csv; charset=utf-8", "html": "text/html; charset=utf-8"}
OUTCOME_LABELS = {
    "content": "content disclosed",
    "non_content": "only non-content disclosed",
    "no_data": "no data found",
    "rejected": "rejected",
    "other": "routed, in review or on hold",
}
# Okabe-Ito: distinguishable with the common colour-vision deficiencies
OUTCOME_COLOURS = {"content": "#0072B2", "non_content": "#56B4E9", "no_data": "#009E73", "rejected": "#D55E00", "other": "#E69F00"}
# requests, accounts, each outcome's share, then every count after requests, in report order;
# last, the ledger entries skipped as unreadable (on the line of the whole range only)
CSV_COLUMNS = ("period", "country", "requests", "accounts", *(f"{o}_share" for o in OUTCOMES), *COUNTS[1:], "skipped_entries")



@functools.cache
def _templates() -> Any:
    """The report templates' Jinja2 environment, made on first use (Jinja2 is slow to import; serving starts without it)."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    return Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=select_autoescape(("html", "j2")),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(report: TransparencyReport, fmt: str, *, generated_at: datetime | None = None, title: str = "Law enforcement requests") -> str:
    if fmt == "json":
        return render_json(report)
    if fmt == "csv":
        return render_csv(report)
    if fmt == "html":
        return render_html(report, generated_at=generated_at, title=title)
    raise ValueError(f"unknown report format `{fmt}`; use one of {', '.join(FORMATS)}")


def render_json(report: TransparencyReport) -> str:
    return json.dumps(report.to_json(), indent=2, sort_keys=True) + "\n"


def _csv_row(row: Row) -> dict[str, Any]:
    data = row.to_json()
    out = {name: data.get(name, "") for name in CSV_COLUMNS if not name.endswith("_share")}
    out.update({f"{o}_share": "" if row.share(o) is None else f"{row.share(o):.1f}" for o in OUTCOMES})
    out["accounts"] = "" if row.accounts is None else row.accounts
    return out


def render_csv(report: TransparencyReport) -> str:
    """One line per period and country, then each period's total, then the total of the range."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in [*report.rows, *report.totals]:
        writer.writerow(_csv_row(row))
    writer.writerow({**_csv_row(report.total), "skipped_entries": len(report.skipped)})
    return buffer.getvalue()


def _name(row: Row) -> str:
    return row.country if row.country is not None else "unattributed"


def _bar_chart(rows: list[Row]) -> dict[str, Any]:
    """Requests per country as horizontal bars."""
    label, width, bar, gap = 120, 420, 20, 8
    most = max((r.requests for r in rows), default=0) or 1
    bars = []
    for i, row in enumerate(rows):
        length = round(width * row.requests / most)
        bars.append({"name": _name(row), "requests": row.requests, "y": i * (bar + gap), "width": max(length, 1 if row.requests else 0)})
    return {"label": label, "width": width, "bar": bar, "height": max(len(rows), 1) * (bar + gap), "bars": bars, "total_width": label + width + 60}


def _share_chart(rows: list[Row]) -> dict[str, Any]:
    """Each country's requests split 100% into the outcome shares."""
    label, width, bar, gap = 120, 420, 20, 8
    lines = []
    for i, row in enumerate(r for r in rows if r.requests):
        x = 0.0
        parts = []
        for outcome in OUTCOMES:
            count = getattr(row, outcome)
            if not count:
                continue
            part = width * count / row.requests
            parts.append(
                {"outcome": outcome, "label": OUTCOME_LABELS[outcome], "x": round(x, 2), "width": round(part, 2), "share": row.share(outcome), "count": count}
            )
            x += part
        lines.append({"name": _name(row), "y": i * (bar + gap), "parts": parts})
    return {"label": label, "width": width, "bar": bar, "height": max(len(lines), 1) * (bar + gap), "lines": lines, "total_width": label + width + 20}


def render_html(report: TransparencyReport, *, generated_at: datetime | None = None, title: str = "Law enforcement requests") -> str:
    countries = report.by_country()
    return _templates().get_template("transparency.html.j2").render(
        report=report,
        title=title,
        generated_at=generated_at.isoformat(timespec="seconds") if generated_at else None,
        countries=countries,
        outcomes=OUTCOMES,
        labels=OUTCOME_LABELS,
        colours=OUTCOME_COLOURS,
        bars=_bar_chart(countries),
        shares=_share_chart(countries),
        name=_name,
        skipped_shown=report.skipped[:SKIPPED_SHOWN],
    )
