"""The pure conductor: a group's line as data, the events that move it, and the rules that decide.

No storage here: the ledger (``skynet_tasks.ledger``) reads the views the rules decide on
and writes what they decided; ``skynet_tasks.step`` runs one step.
"""

from skynet_tasks.conductor.attention import REDISPATCH_AFTER, UPDATE_HARD_LIMIT, attention
from skynet_tasks.conductor.decisions import Action, Decision, Dispatch, Notify
from skynet_tasks.conductor.events import (
    OPERATOR_ACTIONS,
    Event,
    OperatorAction,
    RolloutReady,
    Tick,
    TicketTaken,
    UpdateReported,
)
from skynet_tasks.conductor.line import Group, Rollout, Ticket
from skynet_tasks.conductor.operator_actions import canary_failed
from skynet_tasks.conductor.rules import decide

__all__ = [
    "OPERATOR_ACTIONS", "REDISPATCH_AFTER", "UPDATE_HARD_LIMIT", "Action", "Decision", "Dispatch", "Event", "Group",
    "Notify", "OperatorAction", "Rollout", "RolloutReady", "Tick", "Ticket", "TicketTaken", "UpdateReported",
    "attention", "canary_failed", "decide",
]
