"""The batchcompute backend: render jobs on Alibaba Cloud BatchCompute.

A dispatch becomes one BatchCompute DAG job (a :class:`CloudJob` row) with one task,
``render``, whose InstanceCount is the number of chunks: instance *i* renders the Task row
whose ``cloud_instance`` is *i*, and BatchCompute spreads the instances over the cluster's
VMs (or over VMs it creates for the job, AutoCluster). The node runs the agent package
(:mod:`.package`) with these node paths:

    /renderhub/control/   the job's ``_logs/`` folder in OSS, mounted writable:
        cloud-<c>/spec.json              every chunk's spec (RENDERHUB_SPECS)
        cloud-<c>/events/<i>.<ns>.jsonl  the agent's JSON events, one file per attempt
        cloud-<c>/stdout.<jobId>.render.<i>, stderr.…, agent.log.…   BatchCompute's logs
        (<c> is the row's id and random part, as in its name ``<tag>-r<job>-<c>``)
        task-<index>/agent.log, stdout.log, stderr.log   (Task.log_url, as on own machines)
    /renderhub/publish/   finished frames, uploaded to the job's output folder (OutputMapping)
    project mappings      mounted at their destinations (read-only unless writable)

Polling costs, per active job and cycle, one ``get_job``; a page of ``list_instances`` only
when the job's instance counts changed (at most BATCHCOMPUTE_POLL_PAGES pages, a longer
listing continues next cycle); and, while instances run, one OSS listing of the events
folder plus a ranged read of each file that grew; and, in a cycle where an instance ended,
one listing of the output folder (a frame is done when its file is there). Everything the
poller knows is in the database, so a restarted manager carries on where it stopped.

The modules, in the order a job meets them: :mod:`.submit` (claim chunks, build the plan,
create the job), :mod:`.poll` (the beat cycle), :mod:`.finish` (thumbnails, release),
:mod:`.cancel`; :mod:`.package` and ``node_entry.py`` are what the node runs, and
:mod:`.config` builds the client (``renderhub.batchcompute``) from settings.
"""
