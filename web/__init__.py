"""curtainwatch web: Flask app factory, dashboard and JSON API (a later issue). Holds no business rules."""
