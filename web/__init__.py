"""curtainwatch web: Flask app factory, dashboard and JSON API (coming with the dashboard
issue). Holds no business rules: it calls monitor/ and alerts/."""
