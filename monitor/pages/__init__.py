"""The page queries: what the board, the resident pages, /healthz and /metrics read.
Read-only, one set-based query per page part."""
