"""curtainwatch alerts: alert lifecycle (raise, repeat, auto-resolve); later escalation and notifications. Knows nothing of payload formats."""
