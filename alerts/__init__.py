"""curtainwatch alerts: the alert lifecycle (raise, repeat, claim, resolve), escalation,
notifications, family consent and digests. Knows nothing of payload formats."""
