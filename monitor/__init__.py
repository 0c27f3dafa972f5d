"""curtainwatch domain: models, routines, rules engine, clock, scheduler wiring, config, CLI. Speaks neither MQTT nor HTTP."""
