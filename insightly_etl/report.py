"""`insightly-etl report`: a run's story as one self-contained HTML page, for people to look at.

For an import's checkpoint: requests against the limit over time, quota used per day, rows by
outcome, rejects by column and reason, and the first rejects with their lines. For an export
folder: rows, changes and deletions per object. The numbers come from the same typed summary as
`--summary-json` and `status --json` (insightly_etl.summary, load.history), and each is also
on the page as text. Charts are Plotly's, with plotly.js inlined: the page works offline, and
its Content-Security-Policy lets it load nothing at all. Plotly is imported here only.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from insightly_etl.errors import ConfigError, StopReason
from insightly_etl.extract.export import MANIFEST, read_manifest
from insightly_etl.files import write_atomic
from insightly_etl.load.history import ImportHistory, iso_utc, read_history
from insightly_etl.summary import STOP_REASONS, RunSummary

PER_SECOND = 10  # Insightly's documented ceiling, 600 a minute (docs/api.md §5)
_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; "
    "font-src data:"
)


@dataclass
class Section:
    title: str
    chart: Any = None  # a plotly Figure
    table: list[list[Any]] = field(default_factory=list)  # the same numbers, as text
    header: list[str] = field(default_factory=list)
    note: str = ""


def plotly_available() -> bool:
    try:
        import plotly  # noqa: F401
    except ImportError:
        return False
    return True


def build_report(path: Path | str, out: Path) -> RunSummary:
    """Write the page for a checkpoint file or an export folder; return the summary shown."""
    if out.is_file() and not _ours(out):
        raise ConfigError(
            f"{out} exists and is not an HTML page: the report would replace it",
            hint="Give --html a new file's name, or one a report wrote before.",
        )
    if not plotly_available():
        raise ConfigError(
            "report draws its charts with Plotly, which is not installed",
            hint="pip install 'insightly-etl[report]'",
        )
    if isinstance(path, Path) and path.is_file():
        history = read_history(path)
        summary = history.summary()
        title = f"Import of {history.source} into {history.object}"
        sections = _import_sections(history)
    else:
        manifest, where = _manifest(path)
        summary = export_summary(manifest)
        title = f"Export in {where}"
        sections = _export_sections(manifest)
    _write(out, title, summary, sections)
    return summary


def _ours(path: Path) -> bool:
    """An HTML page (a report written before): the only existing file a report replaces —
    never its own checkpoint, a manifest or a table."""
    with open(path, "rb") as f:
        return f.read(15).lstrip().lower().startswith(b"<!doctype html")


def export_summary(manifest: dict[str, Any]) -> RunSummary:
    """An export folder's summary, from its manifest: what its last run did and left."""
    summary = RunSummary(
        command="export",
        started_utc=iso_utc(manifest.get("started_utc")) or "",
        finished_utc=iso_utc(manifest.get("finished_utc")),
        account=_text(manifest.get("account")),
    )
    stopped = manifest.get("stopped")
    if isinstance(stopped, dict):  # the run stopped before its end: why, as it said then
        reason = stopped.get("reason")
        summary.stop_reason = StopReason(reason) if reason in STOP_REASONS else StopReason.ERROR
        summary.exit_code = _count(stopped.get("exit_code")) or 1
        summary.requests = _count(stopped.get("requests"))
        summary.finished_utc = None
    elif summary.finished_utc is None and summary.started_utc:
        summary.stop_reason, summary.exit_code = StopReason.ERROR, 1
        summary.error = "the last run did not finish: it was killed, or it is still running"
    else:
        summary.requests = _count(manifest.get("requests"))
    for name, entry in sorted(manifest["objects"].items()):
        # a count the run did not make (null in the manifest) is left out, as the run's own
        # --summary-json leaves it out: never a 0 that reads as "nothing changed"
        summary.count(
            name, **{k: _count(entry.get(k)) for k in _EXPORT_COUNTS if entry.get(k) is not None}
        )
        summary.files.append(str(entry.get("file")))
    return summary


_EXPORT_COUNTS = ("rows", "new", "changed", "deleted", "requests")
_CHANGES = ("new", "changed", "deleted")  # each left empty where the run did not count it


def _count(value: Any) -> int:
    """A count from a file another program may have written: a whole number, else 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _manifest(path: Path | str) -> tuple[dict[str, Any], str]:
    if isinstance(path, str):  # object storage: only the manifest is fetched
        from insightly_etl.extract.remote import downloaded

        with downloaded(f"{path.rstrip('/')}/{MANIFEST}") as local:
            return read_manifest(local.parent, path), path
    if not path.exists():
        raise ConfigError(f"{path}: no such file or folder")
    if not (path / MANIFEST).is_file():
        accounts = sorted(p.name for p in path.glob("account=*") if (p / MANIFEST).is_file())
        raise ConfigError(
            f"{path}: neither an import's checkpoint file nor an export folder (no {MANIFEST})",
            hint=f"It holds the exports of several accounts: report one of them, e.g. "
            f"{path / accounts[0]}"
            if accounts
            else None,
        )
    return read_manifest(path), str(path)


def _safe(text: Any) -> str:
    """Text that goes into a chart's data (a script): no markup can close it."""
    return str(text).replace("<", "‹").replace(">", "›")


def _import_sections(h: ImportHistory) -> list[Section]:
    import plotly.graph_objects as go

    sections = []
    minutes = list(h.requests_by_minute.items())
    fig = go.Figure(go.Bar(x=[m for m, _ in minutes], y=[n for _, n in minutes], name="requests"))
    if minutes:
        fig.add_hline(y=PER_SECOND * 60, line_dash="dash", annotation_text="limit: 600 a minute")
    fig.update_layout(xaxis_title="minute (UTC)", yaxis_title="requests", xaxis_type="category")
    sections.append(
        Section(
            "Requests over time, against the limit",
            fig,
            [[m, n] for m, n in minutes[-60:]],
            ["minute (UTC)", "requests"],
            f"{h.requests:,} requests in {len(h.runs)} run(s)"
            + ("; the table shows the last 60 minutes with requests" if len(minutes) > 60 else ""),
        )
    )
    days = h.requests_by_day()
    sections.append(
        Section(
            "Quota used per day",
            go.Figure(go.Bar(x=list(days), y=list(days.values()))).update_layout(
                xaxis_title="day (UTC)", yaxis_title="requests", xaxis_type="category"
            ),
            [[d, n] for d, n in days.items()],
            ["day (UTC)", "requests"],
        )
    )
    outcomes = {k: n for k, n in h.outcomes.items() if n}
    sections.append(
        Section(
            "Rows by outcome",
            go.Figure(go.Bar(x=list(outcomes), y=list(outcomes.values()))),
            [[r["action"] or "-", r["state"], r["rows"]] for r in h.rows],
            ["action", "state", "rows"],
        )
    )
    reasons = list(h.rejects_by_reason.items())
    sections.append(
        Section(
            "Rejects by column and reason",
            go.Figure(
                go.Bar(y=[_safe(r) for r, _ in reasons], x=[n for _, n in reasons], orientation="h")
            ).update_layout(yaxis={"autorange": "reversed"}, height=max(300, 40 * len(reasons)))
            if reasons
            else None,
            [[r, n] for r, n in reasons],
            ["column: reason", "rows"],
            "" if reasons else "No row was rejected or failed.",
        )
    )
    if h.rejects:
        sections.append(
            Section(
                f"The first {len(h.rejects)} rejected or failed rows",
                None,
                [[r["line"], r["state"], r["message"]] for r in h.rejects],
                ["line", "state", "why"],
            )
        )
    sections.append(
        Section(
            "Runs",
            None,
            [
                [
                    r["run"],
                    r.get("kind") or "",  # none before checkpoint version 2
                    r["started_utc"],
                    r["finished_utc"] or "(did not finish)",
                    r["requests"],
                    r["outcome"] or "killed or running",
                ]
                for r in h.runs
            ],
            ["run", "kind", "started (UTC)", "finished (UTC)", "requests", "outcome"],
        )
    )
    return sections


def _export_sections(manifest: dict[str, Any]) -> list[Section]:
    import plotly.graph_objects as go

    objects = sorted((n, e) for n, e in manifest["objects"].items() if isinstance(e, dict))
    names = [_safe(n) for n, _ in objects]

    def column(key: str) -> list[int]:
        return [_count(e.get(key)) for _, e in objects]

    changed = any(column(k)[i] for k in _CHANGES for i in range(len(names)))
    changes = (
        go.Figure([go.Bar(name=k, x=names, y=column(k)) for k in _CHANGES]).update_layout(
            barmode="group"
        )
        if changed
        else None
    )
    return [
        Section(
            "Rows per object",
            go.Figure(go.Bar(x=names, y=column("rows"))),
            [[n, e.get("mode"), _count(e.get("rows")), e.get("exported_utc")] for n, e in objects],
            ["object", "mode", "rows", "exported (UTC)"],
        ),
        Section(
            "Changes and deletions per object (each object's last export)",
            changes,
            [
                [n, *("" if e.get(k) is None else _count(e.get(k)) for k in _CHANGES)]
                for n, e in objects
            ],
            ["object", "new", "changed", "deleted"],
        ),
        Section(
            # objects exported by different runs: each its own last export's requests, and
            # the page's total is the last run's alone
            "Requests per object (each object's last export)",
            go.Figure(go.Bar(x=names, y=column("requests"))),
            [[n, _count(e.get("requests")), e.get("exported_utc")] for n, e in objects],
            ["object", "requests", "exported (UTC)"],
        ),
    ]


def _largest(chart: Any) -> float:
    values = [
        v for trace in chart.data for v in (trace.x if trace.orientation == "h" else trace.y) or ()
    ]
    return max(values, default=0)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    if not rows:
        return ""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td class='n'>{v:,}</td>" if isinstance(v, int) else f"<td>{html.escape(str(v))}</td>"
            for v in row
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _write(out: Path, title: str, summary: RunSummary, sections: list[Section]) -> None:
    import plotly.io as pio
    from plotly.offline import get_plotlyjs

    facts = [
        ("account", summary.account or "unknown"),
        ("requests", f"{summary.requests:,}"),
        ("started (UTC)", summary.started_utc or "unknown"),
        ("finished (UTC)", summary.finished_utc or "did not finish"),
        (
            "stopped early",
            f"{summary.stop_reason} (exit {summary.exit_code})" if summary.stop_reason else "no",
        ),
    ]
    if summary.error:
        facts.append(("note", summary.error))
    parts = []
    for i, s in enumerate(sections):
        chart = ""
        if s.chart is not None:
            s.chart.update_layout(title=None, margin={"t": 20}, template="plotly_white")
            # counts are whole: no 0.5 ticks on a small chart (horizontal bars count along x)
            axis = "xaxis" if s.chart.data and s.chart.data[0].orientation == "h" else "yaxis"
            s.chart.update_layout({axis: {"rangemode": "tozero", "tickformat": ",d"}})
            if _largest(s.chart) <= 10:
                s.chart.update_layout({axis: {"dtick": 1}})
            chart = pio.to_html(
                s.chart, full_html=False, include_plotlyjs=False, div_id=f"chart-{i}",
                config={"displaylogo": False, "responsive": True},
            )  # fmt: skip
        note = f"<p>{html.escape(s.note)}</p>" if s.note else ""
        parts.append(
            f"<section><h2>{html.escape(s.title)}</h2>{note}{chart}{_table(s.header, s.table)}</section>"
        )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<script>
window.reportErrors = [];
window.addEventListener("error", function (e) {{ window.reportErrors.push(String(e.message)); document.documentElement.dataset.errors = window.reportErrors.length; }});
</script>
<script>{get_plotlyjs()}</script>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.9rem; }}
th, td {{ border: 1px solid #ccc; padding: 0.2rem 0.5rem; text-align: left; }}
td.n {{ text-align: right; font-variant-numeric: tabular-nums; }}
dl {{ display: grid; grid-template-columns: max-content auto; gap: 0.2rem 1rem; }}
dt {{ font-weight: 600; }}
</style></head>
<body data-charts="{sum(1 for s in sections if s.chart is not None)}">
<h1>{html.escape(title)}</h1>
<dl>{"".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in facts)}</dl>
<script type="application/json" id="summary">{_json_in_html(summary.to_dict())}</script>
{"".join(parts)}
</body></html>
"""
    write_atomic(out, page.encode(), into_special=True)


def _json_in_html(data: Any) -> str:
    """JSON inside a <script> element: `<`, `>` and `&` escaped so no text can close it."""
    text = json.dumps(data, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
