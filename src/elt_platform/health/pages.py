"""The pages business users read: every dashboard's health, one dashboard with its lineage, and badges.

Plain HTML and SVG rendered on the server (no script): they work in any browser, in an
iframe of the Airflow UI or of a BI tool, and say things in words, not task states. They
load nothing but their own style sheets, which ``CONTENT_SECURITY_POLICY`` names by hash.
"""

from __future__ import annotations

import base64
import hashlib
from collections import defaultdict
from datetime import UTC, datetime
from html import escape

from jinja2 import Environment
from markupsafe import Markup

from elt_platform.alerts.message import safe_url
from elt_platform.health.report import REGISTRATION, DashboardHealth, NodeView

COLOURS = {"fresh": "#1a7f37", "stale": "#b35900", "broken": "#cf222e", "unknown": "#6e7781"}
NODE_COLOURS = {
    "refreshed": "#d7f5dd",
    "failed": "#ffd7d5",
    "test_failed": "#ffd7d5",
    "held_back": "#fff1c2",
    "pending": "#ddf4ff",
    "not_run": "#eaeef2",
}
NODE_WORDS = {
    "refreshed": "refreshed",
    "failed": "failed",
    "test_failed": "built, a check failed",
    "held_back": "held back",
    "pending": "in progress",
    "not_run": "not run",
}
HEADLINES = {
    "fresh": "Fresh: you can trust it",
    "stale": "Stale: it shows older data",
    "broken": "Broken: numbers may be wrong",
    "unknown": "Unknown: its health cannot be told yet",
}

_env = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)


def when(value: datetime | None, empty: str = "never") -> str:
    if value is None:
        return empty
    return value.astimezone(UTC).strftime("%d %b %Y, %H:%M UTC")


def cause_sentence(cause) -> str:
    """A cause in words someone who has never seen Airflow reads."""
    subject = {
        "connection": f"The data load {cause.name} did not succeed",
        "source": f"The source {cause.name} did not pass its checks",
        "model": f"The table {cause.name} could not be rebuilt",
        "test": f"The check {cause.name} found problems in the data",
        REGISTRATION: f"Its registration, the asset {cause.name}, cannot be read: the data team must fix it",
    }.get(cause.kind, cause.name)
    return subject


def next_refresh(h: DashboardHealth) -> str:
    if h.needs_fix:
        return "Needs a fix: an engineer must correct the cause; a new run alone will not"
    waiting = f"waiting for the data load {', '.join(h.waiting_for)}" if h.waiting_for else "rebuilding its tables"
    if h.refreshing and h.expected_fresh:
        return f"A refresh is running, {waiting}; expected by {when(h.expected_fresh)}"
    if h.refreshing:
        return f"A refresh is running, {waiting}"
    if h.status == "fresh" and h.run_in_progress and h.run_id:
        return "Refreshed by the run in progress, which is still loading data for other dashboards"
    if h.status == "fresh":
        return f"Next refresh: {when(h.next_run, 'not scheduled')}"
    if h.expected_fresh:
        return f"Expected fresh again by {when(h.expected_fresh)} (next run {when(h.next_run)})"
    return "No run is scheduled: ask the data team"


def reused_note(h: DashboardHealth) -> str:
    """How much of the latest run reused tables nothing changed in, for whoever wonders why it was quick."""
    if not h.reused:
        return ""
    tables, were = ("1 table", "was") if h.reused == 1 else (f"{h.reused} tables", "were")
    return f"{tables} it reads had nothing new and {were} kept as built, saving about {h.reused_seconds:g} s"


def nothing_wrong(h: DashboardHealth) -> str:
    return "No run has refreshed it yet." if h.status == "unknown" else "Everything it reads was refreshed."


_env.globals.update(
    safe_url=safe_url,
    nothing_wrong=nothing_wrong,
    reused_note=reused_note,
    when=when,
    cause_sentence=cause_sentence,
    next_refresh=next_refresh,
    headlines=HEADLINES,
)

# The pages' only styles: no style attribute (a status's colour is its class), so the policy can
# allow these two sheets by hash instead of any inline style.
_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #1f2328; max-width: 70rem; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.1rem; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .5rem; border-bottom: 1px solid #d0d7de; vertical-align: top; }
.status { color: #fff; border-radius: 1rem; padding: .15rem .6rem; font-weight: 600; white-space: nowrap; }
.cause { margin: .2rem 0; } .msg { color: #57606a; font-family: monospace; font-size: .85rem; white-space: pre-wrap; }
.muted { color: #57606a; } a { color: #0969da; }
svg text { font-family: system-ui, sans-serif; font-size: 12px; }
code, pre { background: #f6f8fa; padding: .2rem .4rem; }
""" + "".join(f".status.{status} {{ background: {colour}; }}\n" for status, colour in COLOURS.items())
_BADGE_CSS = "body{margin:0}"


def _style_source(css: str) -> str:
    return f"'sha256-{base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()}'"


# What the pages may load: their two style sheets, nothing else (no script, no image: every SVG is
# inline; no form). Where they may be framed is the app's to add: it knows which are badges.
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src {_style_source(_CSS)} {_style_source(_BADGE_CSS)}; "
    "base-uri 'none'; form-action 'none'"
)

_BASE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{{ refresh }}">
<title>{{ title }}</title>
<style>{{ css }}</style></head><body>{{ body }}</body></html>"""

_LIST = """
<h1>Dashboard health</h1>
<p class="muted">Whether each dashboard's data can be trusted, from the pipeline's latest runs.
Updated {{ when(now) }}{% if refreshing %}; a refresh is running and this page follows it{% endif %}.</p>
<table>
<tr><th>Dashboard</th><th>Status</th><th>Data as of</th><th>Why</th><th>Next refresh</th></tr>
{% for h in items %}
<tr data-dashboard="{{ h.name }}" data-status="{{ h.status }}">
<td><a href="{{ h.dag_id }}/{{ h.name }}">{{ h.label }}</a><br><span class="muted">{{ h.owner }}</span></td>
<td><span class="status {{ h.status }}">{{ h.status }}</span>
{% if h.since %}<br><span class="muted">since {{ when(h.since) }}</span>{% endif %}
{% if h.refreshing %}<br><span class="muted">refreshing now</span>{% endif %}
{% if h.promise and h.promise.missed %}<br><strong>Missed: promised fresh by {{ h.promise.fresh_by }}
 {{ h.promise.timezone }}</strong>{% endif %}</td>
<td>{{ when(h.data_as_of, "no data yet") }}</td>
<td>{% for c in h.causes %}<div class="cause">{{ cause_sentence(c) }}.</div>{% else %}{{ nothing_wrong(h) }}
{% endfor %}</td>
<td>{{ next_refresh(h) }}</td>
</tr>
{% else %}
<tr><td colspan="5">No dashboards: declare dbt exposures, and let the DAG processor parse the DAG.</td></tr>
{% endfor %}
</table>
"""

_DETAIL = """
<p><a href="../">All dashboards</a></p>
<h1>{{ h.label }} <span class="status {{ h.status }}">{{ h.status }}</span></h1>
<p><strong>{{ headlines[h.status] }}.</strong> {{ h.description }}</p>
<table>
<tr><th>Data as of</th><td>{{ when(h.data_as_of, "no data yet") }}
{% for source, at in h.sources_as_of.items() %}<br><span class="muted">{{ source }}: {{ when(at) }}</span>{% endfor %}
</td></tr>
<tr><th>In this status since</th><td>{{ when(h.since, "-") }}</td></tr>
<tr><th>Why</th><td>
{% for c in h.causes %}<div class="cause" data-cause="{{ c.name }}">{{ cause_sentence(c) }}.
{% if c.message %}<div class="msg">{{ c.message }}</div>{% endif %}
{% if c.log_url %}<a href="{{ link(c.log_url) }}">Open the log</a>{% endif %}</div>
{% else %}{{ nothing_wrong(h) }}{% endfor %}
{% if reused_note(h) %}<div class="muted">{{ reused_note(h) }}.</div>{% endif %}
{% if h.held_back %}<div class="muted">Tables held back: {{ h.held_back | join(", ") }}</div>{% endif %}
</td></tr>
<tr><th>When it will be fresh</th><td>{{ next_refresh(h) }}</td></tr>
{% if h.promise %}<tr><th>Promise</th><td>Fresh by {{ h.promise.fresh_by }} {{ h.promise.timezone }}:
{% if h.promise.missed %}<strong>missed</strong> (deadline {{ when(h.promise.deadline) }}){% else %}kept{% endif %}
</td></tr>{% endif %}
<tr><th>Owner</th><td>{{ h.owner }} {% if h.owner_email %}&lt;{{ h.owner_email }}&gt;{% endif %}</td></tr>
<tr><th>Loads</th><td>{{ h.connections | join(", ") or "none" }}</td></tr>
{% if h.url %}<tr><th>Dashboard</th><td>{% if safe_url(h.url) %}<a href="{{ h.url }}">{{ h.url }}</a>
{% else %}{{ h.url }}{% endif %}</td></tr>{% endif %}
</table>
<h2>Lineage, in the latest run</h2>
<p class="muted">Data flows left to right; each box links to the log of its task in that run.</p>
{{ lineage }}
<h2>Embed a badge</h2>
{% if badge %}
<p>Show this dashboard's status beside it in a BI tool; the badge shows the status and "data as of",
nothing else, and needs no login.</p>
<p>{{ badge_svg }}</p>
<pre>&lt;iframe src="{{ badge }}" width="320" height="28" frameborder="0"&gt;&lt;/iframe&gt;</pre>
{% else %}
<p class="muted">Badges are off. An administrator turns them on by setting <code>ELT_BADGE_SECRET</code>.</p>
{% endif %}
"""


# Compiled once, not per request.
_TEMPLATES = {"base": _env.from_string(_BASE), "list": _env.from_string(_LIST), "detail": _env.from_string(_DETAIL)}


def list_page(items: list[DashboardHealth], now: datetime) -> str:
    refreshing = any(h.refreshing for h in items)
    body = _TEMPLATES["list"].render(items=items, now=now, refreshing=refreshing)
    return _page("Dashboard health", body, refreshing)


def detail_page(h: DashboardHealth, link, badge_url: str | None) -> str:
    body = _TEMPLATES["detail"].render(
        h=h,
        link=link,
        lineage=lineage_svg(h, link),
        badge=badge_url,
        badge_svg=Markup(badge_svg(h)) if badge_url else "",
    )
    return _page(f"{h.label}: {h.status}", body, h.refreshing)


def _page(title: str, body, refreshing: bool) -> str:
    return _TEMPLATES["base"].render(title=title, body=Markup(body), css=Markup(_CSS), refresh=5 if refreshing else 60)


def _columns(nodes: list[NodeView]) -> dict[str, int]:
    """Each node's column: its longest path from a connection, so data flows left to right."""
    by_key = {n.key: n for n in nodes}
    column: dict[str, int] = {}

    def depth(key: str, seen: frozenset = frozenset()) -> int:
        if key in column:
            return column[key]
        parents = [p for p in by_key[key].parents if p in by_key and p not in seen]
        column[key] = 1 + max((depth(p, seen | {key}) for p in parents), default=-1)
        return column[key]

    for node in nodes:
        depth(node.key)
    return column


def lineage_svg(h: DashboardHealth, link) -> str:
    """dashboard <- marts <- models <- sources <- connections, each node coloured by its state."""
    nodes = h.lineage
    column = _columns(nodes)
    rows: dict[int, list[NodeView]] = defaultdict(list)
    for node in sorted(nodes, key=lambda n: (column[n.key], n.name)):
        rows[column[node.key]].append(node)
    width, height, gap_x, gap_y = 180, 34, 36, 12
    last = max(rows, default=-1) + 1
    position = {}
    for col, members in rows.items():
        for row, node in enumerate(members):
            position[node.key] = (20 + col * (width + gap_x), 20 + row * (height + gap_y))
    tallest = max((len(m) for m in rows.values()), default=1)
    dash_x, dash_y = 20 + last * (width + gap_x), 20
    parts = []
    marts = {n.key for n in nodes if n.is_mart}
    for node in nodes:
        x, y = position[node.key]
        for parent in node.parents:
            if parent in position:
                px, py = position[parent]
                parts.append(_edge(px + width, py + height / 2, x, y + height / 2))
    for key in marts:
        x, y = position[key]
        parts.append(_edge(x + width, y + height / 2, dash_x, dash_y + height / 2))
    for node in nodes:
        x, y = position[node.key]
        fill = NODE_COLOURS.get(node.state, "#eaeef2")
        label = f"{node.kind}: {node.name}"
        words = NODE_WORDS.get(node.state, node.state)
        box = (
            f'<g data-node="{escape(node.name)}" data-state="{escape(node.state)}">'
            f'<rect x="{x}" y="{y}" width="{width}" height="{height}" rx="6" fill="{fill}" stroke="#8c959f"/>'
            f'<text x="{x + 8}" y="{y + 14}">{escape(_short(label))}</text>'
            f'<text x="{x + 8}" y="{y + 28}" fill="#57606a">{escape(words)}</text>'
            f"<title>{escape(label)}: {escape(words)}</title></g>"
        )
        url = link(node.log_url) if node.log_url else ""
        parts.append(f'<a href="{escape(url)}">{box}</a>' if url else box)
    colour = COLOURS[h.status]
    parts.append(
        f'<g data-node="{escape(h.name)}" data-state="{h.status}"><rect x="{dash_x}" y="{dash_y}" width="{width}" '
        f'height="{height}" rx="6" fill="#fff" stroke="{colour}" stroke-width="3"/>'
        f'<text x="{dash_x + 8}" y="{dash_y + 14}">dashboard: {escape(_short(h.label))}</text>'
        f'<text x="{dash_x + 8}" y="{dash_y + 28}" fill="{colour}">{h.status}</text></g>'
    )
    total_w = dash_x + width + 20
    total_h = 40 + tallest * (height + gap_y)
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="lineage of {escape(h.label)}" '
        f'width="{total_w}" height="{total_h}" viewBox="0 0 {total_w} {total_h}">{"".join(parts)}</svg>'
    )
    return Markup(svg)


def _edge(x1: float, y1: float, x2: float, y2: float) -> str:
    mid = (x1 + x2) / 2
    return f'<path d="M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}" fill="none" stroke="#8c959f"/>'


def _short(text: str, limit: int = 28) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def badge_svg(h: DashboardHealth) -> str:
    """A shields-style badge: the dashboard's name, its status and its data's age. Nothing else."""
    left = _short(h.label, 24)
    right = h.status + (f" · {when(h.data_as_of)}" if h.data_as_of else "")
    lw, rw = 8 + 7 * len(left), 8 + 7 * len(right)
    colour = COLOURS[h.status]
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{lw + rw}" height="20" role="img" '
        f'aria-label="{escape(left)}: {escape(right)}"><title>{escape(left)}: {escape(right)}</title>'
        f'<rect width="{lw}" height="20" fill="#555"/><rect x="{lw}" width="{rw}" height="20" fill="{colour}"/>'
        f'<g fill="#fff" font-family="Verdana,sans-serif" font-size="11">'
        f'<text x="4" y="14">{escape(left)}</text><text x="{lw + 4}" y="14">{escape(right)}</text></g></svg>'
    )


def badge_page(h: DashboardHealth, refresh_seconds: int = 60) -> str:
    """The badge as a page for an iframe, refreshing itself."""
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><meta http-equiv="refresh" content="{refresh_seconds}">'
        f"<title>{escape(h.label)}: {h.status}</title><style>{_BADGE_CSS}</style></head>"
        f"<body>{badge_svg(h)}</body></html>"
    )


def plain_text(items: list[DashboardHealth]) -> str:
    """The list page for a terminal (``elt health``, the end of ``make run``)."""
    lines = []
    width = max((len(h.label) for h in items), default=0)
    for h in items:
        head = f"  {h.label:<{width}}  {h.status.upper():<7}  data as of {when(h.data_as_of, 'never')}"
        lines.append(head + (" (refreshing now)" if h.refreshing else ""))
        if h.refreshing or h.run_in_progress:
            lines.append(f"  {'':<{width}}  {next_refresh(h)}")
        for cause in h.causes:
            lines.append(f"  {'':<{width}}  - {cause_sentence(cause)}: {cause.message.splitlines()[0][:160]}")
        if h.status != "fresh" and not (h.refreshing or h.run_in_progress):
            lines.append(f"  {'':<{width}}  {next_refresh(h)}")
        if note := reused_note(h):
            lines.append(f"  {'':<{width}}  {note}.")
        if h.promise and h.promise.missed:
            lines.append(f"  {'':<{width}}  Missed its promise: fresh by {h.promise.fresh_by} {h.promise.timezone}")
    return "\n".join(lines)
