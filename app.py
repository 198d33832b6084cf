"""netguard's Chalice app: wiring only. Every handler hands its event to chalicelib.handlers.

Queue names carry the stage (NETGUARD_STAGE, set per stage in .chalice/config.json and by
`make package`), so dev and prod can share an account.
"""
import os

from chalice import Chalice, Rate

from chalicelib import handlers
from chalicelib.policy import load_policy

app = Chalice(app_name="netguard")
PATTERNS = handlers.event_patterns(load_policy())
STAGE = os.environ.get("NETGUARD_STAGE", "dev")


@handlers.tolerant
@app.on_cw_event(PATTERNS["on_api_call"], name="on_api_call")
def on_api_call(event):
    return handlers.on_api_call(event)


@handlers.tolerant
@app.on_cw_event(PATTERNS["on_state_change"], name="on_state_change")
def on_state_change(event):
    return handlers.on_state_change(event)


@handlers.tolerant
@app.on_cw_event(PATTERNS["on_compliance_change"], name="on_compliance_change")
def on_compliance_change(event):
    return handlers.on_compliance_change(event)


@app.lambda_function(name="config_rule")
def config_rule(event, context):
    return handlers.config_rule(event, context)


@handlers.tolerant
@app.schedule(Rate(12, unit=Rate.HOURS), name="sweep")
def sweep(event):
    return handlers.sweep(event)


@app.on_sqs_message(queue=f"netguard-sweep-{STAGE}", batch_size=1, name="sweep_worker")
def sweep_worker(event):
    return handlers.sweep_worker(event)


@app.on_sqs_message(queue=f"netguard-recheck-{STAGE}", batch_size=10, name="recheck")
def recheck(event):
    return handlers.recheck(event)
