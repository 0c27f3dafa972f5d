"""Helpers shared by the test suite and the benchmarks: dependency rules and MQTT tools."""
