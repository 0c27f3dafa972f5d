"""Importing: the community file (YAML: `community` says what it holds, `load` reads it,
`validate` checks it), the residents spreadsheet (CSV/XLSX, `spreadsheet/`) and the one
apply path (`apply`) that both, and the CLI, use to write residents, devices, routines and
people, each import leaving an audit line."""
