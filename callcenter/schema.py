"""Every table of the application, in one metadata: the engine's and the apps' built on it.

Alembic (`callcenter/migrations/env.py`) and the tests import this module, so that a table added by
any area of the product is part of the schema they build and compare.
"""

from callcenter import reservation_counts  # noqa: F401  (registers the /metrics running totals)
from callcenter.routing.models import Base
from callcenter.sms import models as sms_models  # noqa: F401  (registers the SMS table)
from callcenter.voice import instructions as voice_instructions  # noqa: F401  (registers voice_instructions)
from callcenter.voice import models as voice_models  # noqa: F401  (registers the voice tables)
from callcenter.web import models as web_models  # noqa: F401  (registers the web sign-in table)

metadata = Base.metadata
