"""Importing: the community file (YAML), the spreadsheet (CSV/XLSX) and the one apply path
that both (and the CLI) use to write residents, devices, routines and people."""
