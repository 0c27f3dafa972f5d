"""Helpers shared by the test suite and the benchmarks: the test world (world.py), the web
app and signing in, runtimes on a broker, a receiver for the phones, dependency rules, MQTT
and PostgreSQL tools."""
