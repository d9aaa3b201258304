"""Flask extensions, created unbound and attached to each app in ``create_app``."""

from __future__ import annotations

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()
login_manager = LoginManager()
# No default limits: only the login form is limited here (nginx limits uploads). Storage is
# the UI's Redis (RATELIMIT_STORAGE_URI, set from WEB_REDIS_URL in create_app).
limiter = Limiter(key_func=get_remote_address, default_limits=[])
