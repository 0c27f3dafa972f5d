"""curtainwatch alerts: the alert lifecycle (raise, repeat, auto-resolve); escalation and
notifications come with the alert flow. Knows nothing of payload formats."""
