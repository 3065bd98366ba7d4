"""Signals other apps may listen to (notifications, webhooks); sent after the commit."""

from __future__ import annotations

from django.dispatch import Signal

# A run's state changed: sender=WorkflowRun, run_id, old_state, new_state.
run_state_changed = Signal()
