"""curtainwatch's domain, by job: the model and database (models, db, tables, clock,
config, messages, access) at the top; rules/ (windows, schedules, settling, device health,
the engine's tick); importing/ (community file, spreadsheet, one apply path); admin/ (the
services behind the admin pages); pages/ (the queries pages read). Speaks neither MQTT
nor HTTP; curtainwatch/ wires it to sensors/, alerts/ and web/. See docs/architecture.md."""
