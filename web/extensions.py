"""The Flask extensions, made once and bound to each app in `web.app.create_app`
(Flask's `init_app` pattern): login sessions, CSRF, translations, login rate limits."""

from __future__ import annotations

from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_wtf import CSRFProtect

login_manager = LoginManager()
csrf = CSRFProtect()
babel = Babel()
# In memory, per process: enough to slow password guessing at one instance's door.
limiter = Limiter(get_remote_address, storage_uri="memory://", default_limits=[])
