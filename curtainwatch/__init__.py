"""The program: wires the rooms (sensors, monitor, alerts, web) into one running process.

The only package allowed to import all of them: the `curtainwatch` command (cli), the
composition root (runtime), the web server (serve) and the demo. See docs/architecture.md."""
