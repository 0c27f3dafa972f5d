"""The 30-day chart on a resident's page, drawn on the server as an SVG string: for each
local day, when the curtain was first opened (circle) and last closed (square), when a
light first came on (diamond), and a red triangle under the day for alerts raised; the
usual opening time (median) is a dashed line, so "she usually opens at 07:30, later every
day this week" can be seen at a glance.

Pure functions over monitor.pages.history's DayPoint/SeriesStats: no JavaScript, no library.
Accessible: <title>/<desc> on the image, a <title> on every mark, and `summary_text` for
the sentence under the chart. A viewBox with width 100% lets it shrink to a phone.
Time of day runs downwards, as in a diary: mornings at the top."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from flask_babel import gettext as _
from flask_babel import ngettext
from markupsafe import Markup, escape

from monitor.pages.history import DayPoint, SeriesStats

WIDTH, HEIGHT = 420, 262
LEFT, RIGHT, TOP = 40, 6, 10
PLOT_BOTTOM = 210  # the 24:00 line
ALERT_Y = 224  # the row of alert triangles
LABEL_Y = 252  # day labels
DEFAULT_LO = 5 * 60  # 05:00, unless something happened earlier
HI = 24 * 60
GRID_STEP = 3 * 60

COLOURS = {
    "open": "#1f5fbf",
    "close": "#6a3d9a",
    "light": "#c77700",
    "alert": "#b3261e",
    "usual": "#1f5fbf",
    "grid": "#d9d9d6",
    "away": "#ecebe6",
    "ink": "#555",
}


@dataclass(frozen=True)
class Scale:
    """Where a day (by index) and a time of day (minutes after midnight) are drawn."""

    days: int
    lo: int
    hi: int = HI

    @property
    def step(self) -> float:
        return (WIDTH - LEFT - RIGHT) / max(self.days, 1)

    def x(self, index: int) -> float:
        return round(LEFT + (index + 0.5) * self.step, 1)

    def y(self, minutes: int) -> float:
        span = self.hi - self.lo
        return round(TOP + (minutes - self.lo) / span * (PLOT_BOTTOM - TOP), 1)


def scale_for(points: Sequence[DayPoint]) -> Scale:
    """05:00-24:00, stretched to the full hour of anything earlier (a light on at 03:10)."""
    values = [
        m for p in points for m in (p.first_open, p.last_close, p.first_light) if m is not None
    ]
    lo = min([DEFAULT_LO, *(m // 60 * 60 for m in values)])
    return Scale(len(points), lo)


def hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def history_svg(
    points: Sequence[DayPoint], stats: SeriesStats, chart_id: str = "history-chart"
) -> Markup:
    """The chart as one <svg> element, safe to put in a page as it is."""
    scale = scale_for(points)
    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="history-chart" id="{chart_id}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc" font-size="12" '
        f'font-family="system-ui, sans-serif">',
        f'<title id="{chart_id}-title">'
        + _e(_("Curtain and lights over the last %(days)s days", days=len(points)))
        + "</title>",
        f'<desc id="{chart_id}-desc">{_e(summary_text(stats))} {_e(_describe(points))}</desc>',
    ]
    out += _away_columns(points, scale)
    out += _grid(points, scale)
    if stats.usual_open is not None:
        y = scale.y(stats.usual_open)
        label = _("Usual opening time %(time)s", time=hhmm(stats.usual_open))
        out.append(
            f'<line class="usual" data-minute="{stats.usual_open}" x1="{LEFT}" '
            f'x2="{WIDTH - RIGHT}" y1="{y}" y2="{y}" stroke="{COLOURS["usual"]}" '
            f'stroke-width="1.5" stroke-dasharray="6 4"><title>{_e(label)}</title></line>'
        )
    out += _trend(points, scale)
    out += _marks(points, scale)
    out.append("</svg>")
    return Markup("".join(out))


def summary_text(stats: SeriesStats) -> str:
    """One or two sentences for under the chart (and its <desc>)."""
    if stats.days_watched == 0:
        return _("No curtain or light events in the last 30 days.")
    parts: list[str] = []
    if stats.usual_open is None:
        parts.append(_("Not enough days with the curtain opened to tell the usual time yet."))
    elif stats.late_streak >= 2:
        parts.append(
            _(
                "Usually opens the curtain at %(time)s; the last %(n)s days later than usual.",
                time=hhmm(stats.usual_open),
                n=stats.late_streak,
            )
        )
    elif stats.early_streak >= 2:
        parts.append(
            _(
                "Usually opens the curtain at %(time)s; the last %(n)s days earlier than usual.",
                time=hhmm(stats.usual_open),
                n=stats.early_streak,
            )
        )
    else:
        parts.append(_("Usually opens the curtain at %(time)s.", time=hhmm(stats.usual_open)))
    if stats.days_without_open:
        parts.append(
            ngettext(
                "The curtain was not opened on %(num)s of the last %(days)s days.",
                "The curtain was not opened on %(num)s of the last %(days)s days.",
                stats.days_without_open,
                days=stats.days_watched,
            )
        )
    if stats.usual_light is not None:
        parts.append(_("Lights usually first on at %(time)s.", time=hhmm(stats.usual_light)))
    return " ".join(parts)


def _describe(points: Sequence[DayPoint]) -> str:
    if not points:
        return ""
    return _(
        "From %(first)s to %(last)s; time of day runs downwards from %(top)s to 24:00.",
        first=points[0].day.isoformat(),
        last=points[-1].day.isoformat(),
        top=hhmm(scale_for(points).lo),
    )


def _away_columns(points: Sequence[DayPoint], scale: Scale) -> list[str]:
    out = []
    for i, p in enumerate(points):
        if p.away:
            x = round(scale.x(i) - scale.step / 2, 1)
            out.append(
                f'<rect class="away" data-day="{p.day.isoformat()}" x="{x}" y="{TOP}" '
                f'width="{round(scale.step, 1)}" height="{PLOT_BOTTOM - TOP}" '
                f'fill="{COLOURS["away"]}"><title>'
                + _e(_("%(day)s: away", day=p.day.isoformat()))
                + "</title></rect>"
            )
    return out


def _grid(points: Sequence[DayPoint], scale: Scale) -> list[str]:
    out = [f'<g class="grid" stroke="{COLOURS["grid"]}" stroke-width="1">']
    first = math.ceil(scale.lo / GRID_STEP) * GRID_STEP
    hours = list(range(first, scale.hi + 1, GRID_STEP))
    if scale.lo not in hours:
        hours.insert(0, scale.lo)
    for m in hours:
        y = scale.y(m)
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y}" y2="{y}"/>')
    out.append("</g>")
    out.append(f'<g class="y-labels" fill="{COLOURS["ink"]}" text-anchor="end">')
    for i, m in enumerate(hours):
        if i + 1 < len(hours) and hours[i + 1] - m < GRID_STEP // 2:
            continue  # the top edge right above a labelled line: its label would overlap
        out.append(f'<text x="{LEFT - 4}" y="{scale.y(m) + 4}">{hhmm(m)}</text>')
    out.append("</g>")
    # Day labels every 7 days counting back from today, so today is always labelled.
    out.append(f'<g class="x-labels" fill="{COLOURS["ink"]}" text-anchor="middle">')
    last = len(points) - 1
    for i, p in enumerate(points):
        if (last - i) % 7 == 0:
            out.append(f'<text x="{scale.x(i)}" y="{LABEL_Y}">{p.day.month}/{p.day.day}</text>')
    out.append("</g>")
    return out


def _trend(points: Sequence[DayPoint], scale: Scale) -> list[str]:
    """A thin line through the openings of consecutive days (broken where a day has none)."""
    runs: list[list[str]] = [[]]
    for i, p in enumerate(points):
        if p.first_open is None:
            runs.append([])
        else:
            runs[-1].append(f"{scale.x(i)},{scale.y(p.first_open)}")
    return [
        f'<polyline class="trend" points="{" ".join(run)}" fill="none" '
        f'stroke="{COLOURS["open"]}" stroke-opacity="0.45" stroke-width="1.2"/>'
        for run in runs
        if len(run) > 1
    ]


def _marks(points: Sequence[DayPoint], scale: Scale) -> list[str]:
    out = ['<g class="marks">']
    for i, p in enumerate(points):
        x, day = scale.x(i), p.day.isoformat()
        if p.last_close is not None:
            y = scale.y(p.last_close)
            tip = _("%(day)s: curtain last closed at %(time)s", day=day, time=hhmm(p.last_close))
            out.append(
                f'<rect class="pt close" data-day="{day}" data-minute="{p.last_close}" '
                f'x="{x - 3.5}" y="{y - 3.5}" width="7" height="7" fill="{COLOURS["close"]}">'
                f"<title>{_e(tip)}</title></rect>"
            )
        if p.first_light is not None:
            y = scale.y(p.first_light)
            tip = _("%(day)s: light first on at %(time)s", day=day, time=hhmm(p.first_light))
            out.append(
                f'<path class="pt light" data-day="{day}" data-minute="{p.first_light}" '
                f'd="M{x},{y - 5}L{x + 5},{y}L{x},{y + 5}L{x - 5},{y}Z" '
                f'fill="{COLOURS["light"]}"><title>{_e(tip)}</title></path>'
            )
        if p.first_open is not None:
            y = scale.y(p.first_open)
            tip = _("%(day)s: curtain first opened at %(time)s", day=day, time=hhmm(p.first_open))
            out.append(
                f'<circle class="pt open" data-day="{day}" data-minute="{p.first_open}" '
                f'cx="{x}" cy="{y}" r="4" fill="{COLOURS["open"]}" stroke="#fff" '
                f'stroke-width="1"><title>{_e(tip)}</title></circle>'
            )
        if p.alerts:
            tip = ngettext(
                "%(day)s: %(num)s alert raised", "%(day)s: %(num)s alerts raised", p.alerts, day=day
            )
            out.append(
                f'<path class="alert-mark" data-day="{day}" data-alerts="{p.alerts}" '
                f'd="M{x},{ALERT_Y - 6}L{x + 5.5},{ALERT_Y + 4}L{x - 5.5},{ALERT_Y + 4}Z" '
                f'fill="{COLOURS["alert"]}"><title>{_e(tip)}</title></path>'
            )
    out.append("</g>")
    return out


def _e(text: str) -> str:
    return str(escape(text))
