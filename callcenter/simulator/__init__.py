"""A local stand-in for the parts of Twilio a voice/SMS contact center uses.

`create_simulator(app_base_url, account_sid, auth_token)` gives a Flask app serving Twilio's REST
API (Calls, Queues and Members, Messages); `simulator_of(app)` is the `Simulator` behind it, which
places simulated calls (`place_call(Caller(...))`), rings simulated agents' phones (`add_phone`),
follows the app's TwiML with signed webhooks, and moves time (`advance`, `run_until_idle`).
"""

from callcenter.simulator.calls import Call
from callcenter.simulator.carrier import Simulator
from callcenter.simulator.clock import VirtualClock, WallClock
from callcenter.simulator.parties import Caller, Phone
from callcenter.simulator.sdk import WsgiHttpClient
from callcenter.simulator.server import create_simulator, simulator_of
from callcenter.simulator.transport import HttpTransport, WsgiTransport

__all__ = ["Call", "Caller", "HttpTransport", "Phone", "Simulator", "VirtualClock", "WallClock", "WsgiHttpClient",
           "WsgiTransport", "create_simulator", "simulator_of"]
