"""curtainwatch sensors: MQTT client, payload adapters, device registry lookups. Turns payloads into readings; never decides what is an alert."""
