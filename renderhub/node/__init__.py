"""The render node: a Celery worker that holds no database, storage or cloud keys.

It reaches the broker and nothing else of the manager's secrets. For each chunk message
(``jobs.tasks.render_chunk``) it asks the manager for the chunk over the broker
(:mod:`.claims`), and gets back the chunk's spec with links to read the scene's files and
grants to write its frames and logs (``renderhub.storage.grants``); it runs the agent in
the sandbox the spec names, uploads what the agent checked, and reports every step as
events (``renderhub.node_events``). The manager answers a report about a chunk it no longer
gives this node with a stop, so cancel, pause and requeue reach the node within one
heartbeat. Standard library, kombu and Celery only: no Django (docs/NODE-PROTOCOL.md).

Start one with ``python -m renderhub.node`` (``make node``).
"""
