"""Residents spreadsheets (CSV or XLSX, one row per resident) and the preview of an import,
for spreadsheets and the community file alike.

A spreadsheet is read into text cells (`reading`), each row turned into the community
file's shape (`rows`) and checked by `monitor.importing.validate.check_community`: the rules
are the file's own, and every problem names the row (as the spreadsheet shows it, the
header is row 1) and the column:
`row 7, column curtain_open: "25:00" is not a time (expected "HH:MM", 00:00 to 23:59)`.

A spreadsheet updates the residents it lists and leaves everything else as it is: the
community's time zone, people, escalation and the residents not in the file (unless the
import retires them). A column the file leaves out keeps what is stored for residents that
exist (`stored`); an empty cell means "none". Window cells hold one or more windows
("07:00-09:00; 18:00-20:00"), each with its own grace if wanted ("07:00-09:00 +15m", else
the row's grace column); device cells one or more ids; `away` one or more date ranges
("2026-12-01..2026-12-07; 2027-01-10..2027-01-12").

`plan.plan_sheet` and `plan.plan_community` compare a file with the database and say, per
resident, what an import would create or change, and every problem; nothing is written.
`plan.apply_plan` writes a plan that has no problems, through monitor.importing.apply.
`Plan.digest()` fingerprints what a preview showed, so an import can refuse to write
anything else. An upload waits between the preview and the import in `uploads`; the
template to fill in is `template`."""
