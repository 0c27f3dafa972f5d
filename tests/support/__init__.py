"""Helpers shared by the test suite and the benchmarks: the test world (world.py: the
community builder, times, feeding readings, moving the clock, runtimes), the community file
the loader tests edit as text (community_file.py), the web app and signing in (web.py),
reading back what a runtime stored (watch.py), several instances (instances.py), a receiver
for the phones, dependency rules and the preflight, MQTT and PostgreSQL tools."""
