"""curtainwatch web: the Flask app factory, blueprints for the dashboard, phone and family
pages, the JSON API, templates and translations. Holds no business rules: it calls
monitor/ and alerts/, and shares its helpers through web.helpers, never the factory."""
