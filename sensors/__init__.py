"""curtainwatch sensors: MQTT client, payload adapters, device registry, replay and record.
Turns payloads into readings and stored changes; never decides what is an alert."""
