"""The residents spreadsheet's template, made from the column definitions: a header and
one example row, as CSV (UTF-8 with a BOM) or as an XLSX workbook with a sheet explaining
the columns."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from monitor.importing.spreadsheet.reading import COLUMNS, column_letter


def template_rows() -> list[list[str]]:
    """The header and one example row, from the column definitions."""
    return [[c.key for c in COLUMNS], [c.example for c in COLUMNS]]


def template_csv() -> bytes:
    """UTF-8 with a BOM, so Excel opens the Chinese example as Chinese."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(template_rows())
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def template_xlsx(help_rows: Sequence[Sequence[str]] = ()) -> bytes:
    """The template as a workbook: "residents" (header and example, cells formatted as text
    so ids like "0301" keep their zeros), then, if given, a sheet explaining the columns."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "residents"
    for row in template_rows():
        sheet.append(row)
    for i, c in enumerate(COLUMNS):
        letter = column_letter(i)
        sheet.column_dimensions[letter].width = max(12, len(c.example) + 4, len(c.key) + 4)
        for cell in sheet[letter]:
            cell.number_format = "@"
        sheet[f"{letter}1"].font = Font(bold=True)
    sheet.freeze_panes = "A2"
    if help_rows:
        about = book.create_sheet("columns")
        for line in help_rows:
            about.append(list(line))
        for letter, width in zip("ABCDE", (18, 16, 10, 24, 70), strict=False):
            about.column_dimensions[letter].width = width
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
