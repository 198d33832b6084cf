"""netguard's Chalice app: wiring only. Every handler hands its event to chalicelib.handlers."""
from chalice import Chalice

from chalicelib import handlers
from chalicelib.policy import load_policy

app = Chalice(app_name="netguard")
PATTERNS = handlers.event_patterns(load_policy())


@handlers.tolerant
@app.on_cw_event(PATTERNS["on_api_call"], name="on_api_call")
def on_api_call(event):
    return handlers.on_api_call(event)


@handlers.tolerant
@app.on_cw_event(PATTERNS["on_state_change"], name="on_state_change")
def on_state_change(event):
    return handlers.on_state_change(event)
