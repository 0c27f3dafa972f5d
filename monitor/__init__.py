"""curtainwatch's domain: models, routines, rules engine, clock, scheduler wiring, config, CLI.
Speaks neither MQTT nor HTTP (runtime.py, the composition root, wires those in)."""
