"""The rules: windows in local time, schedules, settling, device health and the engine's
tick. Pure functions where they can be; the engine runs them as set-based statements."""
