"""RenderHub: a self-hosted control panel for batch rendering and genomics workflows.

Deliberately empty: the node agent (``renderhub.agent``) runs on machines with nothing but
Python, so importing this package must not pull in Django or Celery. The Celery app is
loaded by ``RenderHubConfig.ready()`` and found by ``celery -A renderhub``.
"""
