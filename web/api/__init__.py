"""The JSON API under /api/v1: residents, devices, alerts (list, read, claim, resolve) and
events, for integrations and scripts.

Authentication: ``Authorization: Bearer cw_...`` only (a user's API token, made by
monitor.admin.users.new_api_token). The session cookie of the dashboard is ignored on purpose, so a
page on another site cannot make a signed-in browser act through the API (the blueprint is
exempt from CSRF because nothing here trusts cookies). Missing or bad token: 401 with a
``WWW-Authenticate: Bearer`` header. What a token may see and do is its user's
`monitor.access.Scope`, exactly as on the pages: staff and admins everything, volunteers their
buildings (and may claim and resolve there), family their relative, read-only.

Conventions:
- Times are ISO 8601 in UTC with an explicit offset (``2026-11-22T23:40:00+00:00``): one
  unambiguous form for machines; residents may live in other zones than the community.
  Query times (``since``, ``until``) may carry any offset; a time without one is read in
  the community's zone.
- Errors are always JSON ``{"error": "<what is wrong>", ...}`` with details such as
  ``field``, ``allowed`` or ``max``. Outside the caller's scope: 403 (also for an id that does
  not exist, so ids cannot be probed; staff get 404 for those). Someone else got there
  first: 409.
- Lists run a constant number of statements, whatever their length. Alerts and events come
  newest first, ``limit`` at a time; ``next_cursor`` (null on the last page) is passed back
  as ``cursor`` for the next page.

Endpoints: GET residents[?building=], GET residents/<id>, GET devices[?status=offline|
low_battery][&resident=], GET alerts[?status=open|claimed|resolved|active (open or
claimed)|all (default)][&kind=]
[&resident=][&since=][&until=][&limit=][&cursor=], GET alerts/<id>, POST alerts/<id>/claim,
POST alerts/<id>/resolve {"outcome": ..., "note": ...}, GET events?resident=[&since=]
[&until=][&limit=][&cursor=] (resident optional for staff)."""

# The blueprint, its errors, authentication and query-string helpers are web.api.blueprint;
# importing the endpoint modules (residents and devices, alerts, events) registers their
# routes on it.
from web.api import alerts, events, residents  # noqa: F401
from web.api.blueprint import bp

__all__ = ["bp"]
