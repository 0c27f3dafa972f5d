"""curtainwatch sensors: MQTT client, payload adapters, the ingestor, replay, record and the
simulator. Turns payloads into readings and stored changes; never decides what is an alert."""
