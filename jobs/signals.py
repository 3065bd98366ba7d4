"""Events other apps subscribe to (webhooks, e-mail), sent after the change commits.

- ``job_state_changed(job_id, old_state, new_state)``: a render job moved to a new state.
- ``frame_failed(job_id, frame_number, reason)``: a frame failed for good (no more retries).
"""

from __future__ import annotations

from django.dispatch import Signal

job_state_changed = Signal()
frame_failed = Signal()
