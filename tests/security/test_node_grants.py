"""Attacks by a render node on what the manager grants it (issue 15).

A node holds no keys: it gets a read link per scene file and a write grant per place it
writes. A hostile node tries to write past its grant (another frame, a folder up, another
project's output), with a tampered or expired grant, bigger than allowed; to take a chunk
it was never sent; to point a frame's record at another file; and to make the manager's
drain write into a render queue. Every attempt is made for real (HTTP requests to the
live site, messages through the real broker) and refused.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import pytest
from django.core import signing

from jobs import runner, services
from jobs.choices import FrameState, TaskState
from jobs.event_tokens import claim_ticket, token_of
from jobs.events import apply_events
from jobs.models import Task
from jobs.node_requests import handle
from renderhub import storage
from renderhub.node.claims import Control
from renderhub.node_events import events_connection
from renderhub.storage.grants import UPLOAD_SALT, write_grant
from tests.jobs.conftest import submit_one
from tests.nodes.conftest import needs_redis


def put(base: str, url: str, body: bytes, headers: dict[str, str] | None = None) -> int:
    request = Request(base + url, data=body, method="PUT", headers=headers or {})  # noqa: S310
    try:
        with urlopen(request, timeout=10) as response:  # noqa: S310 - the test's own site
            return int(response.status)
    except HTTPError as exc:
        return exc.code


@pytest.mark.django_db(transaction=True)
def test_a_write_grant_reaches_exactly_its_prefix(
    live_server: Any, storage_root: Path, storage_url: str, settings: Any
) -> None:
    grant = write_grant(storage_url + "output/job-1/shot_0001.", 600, 1000)
    base = live_server.url
    assert put(base, grant["url"] + "png", b"frame one") == 201
    assert (storage_root / "output/job-1/shot_0001.png").read_bytes() == b"frame one"

    # Past the prefix: folders, dot-dot, a hidden name, another frame's name.
    for tail in ("..%2F..%2Fsecret", "a%2Fb", "..", ".hidden", "png%00", "x" * 101):
        assert put(base, grant["url"] + tail, b"evil") in (400, 403, 404), tail
    assert sorted(p.name for p in (storage_root / "output/job-1").iterdir()) == ["shot_0001.png"]

    # Bigger than the grant allows (declared, or sent without saying).
    assert put(base, grant["url"] + "exr", b"x" * 1001) == 413
    assert not (storage_root / "output/job-1/shot_0001.exr").exists()

    # A tampered grant (another prefix written into its payload) and an expired one.
    token = grant["url"].split("/")[3]
    payload = signing.TimestampSigner(salt=UPLOAD_SALT).unsign_object(token)
    forged = signing.dumps({**payload, "p": "other-project/"}, compress=True)
    assert put(base, f"/storage/upload/{forged}/png", b"evil") == 403
    assert put(base, f"/storage/upload/{token[:-2]}xx/png", b"evil") == 403
    expired = write_grant(storage_url + "output/job-1/shot_0002.", 1, 1000)
    time.sleep(2.1)
    assert put(base, expired["url"] + "png", b"late") == 403
    assert not (storage_root / "output/job-1/shot_0002.png").exists()
    assert not (storage_root / "other-project").exists()


@pytest.mark.django_db(transaction=True)
def test_a_write_grant_cannot_follow_a_planted_link_out_of_storage(
    live_server: Any, storage_root: Path, storage_url: str, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (storage_root / "output").mkdir()
    (storage_root / "output" / "job-2").symlink_to(outside)
    # The manager refuses to grant a folder that leaves the storage root...
    with pytest.raises(storage.StorageError):
        write_grant(storage_url + "output/job-2/shot_0001.", 600, 1000)
    # ...and a grant made before the link was planted does not write through it.
    (storage_root / "output" / "job-2").unlink()
    grant = write_grant(storage_url + "output/job-2/shot_0001.", 600, 1000)
    (storage_root / "output" / "job-2").symlink_to(outside)
    assert put(live_server.url, grant["url"] + "png", b"evil") == 403
    assert list(outside.iterdir()) == []


@pytest.mark.django_db
def test_a_frame_record_names_only_what_the_grant_allowed(
    project: Any, fake_software: Any, cluster: Any, scene_url: str
) -> None:
    job = submit_one(project, fake_software, cluster, scene_url, frames="1-3", nodes=1)
    task, _ = runner.claim(job.tasks.get().pk, "evil@node")
    base = {"task": task.pk, "attempt": 1, "token": token_of(task), "at": time.time()}
    apply_events(
        [
            {**base, "seq": 1, "kind": "frame_done", "frame": 1, "output": "../../../etc/passwd"},
            {
                **base, "seq": 2, "kind": "frame_done", "frame": 2,
                "output_url": "file:///etc/shadow", "thumbnail_url": "oss://other/x.jpg",
            },
            {**base, "seq": 3, "kind": "frame_done", "frame": 3, "output": "png"},
        ]
    )  # fmt: skip
    frames = {f.number: f for f in job.frame_set.filter(state=FrameState.DONE)}
    assert frames[1].output_url == "" and frames[2].output_url == ""
    assert frames[2].thumbnail_url == ""
    assert frames[3].output_url == storage.join(job.output_url, "shot_a_0003.png")


@pytest.mark.django_db
def test_a_claim_needs_the_ticket_its_message_carried(
    project: Any, fake_software: Any, cluster: Any, scene_url: str
) -> None:
    job = submit_one(project, fake_software, cluster, scene_url, frames="1-4", nodes=2)
    first, second = job.tasks.order_by("index")
    reply = "renderhub.node.evil@node.1"
    claims = [
        {"kind": "claim", "id": "1", "task": first.pk, "node": "evil@node", "reply": reply},
        {"kind": "claim", "id": "2", "task": first.pk, "node": "evil@node", "reply": reply,
         "ticket": claim_ticket(second.pk)},
        {"kind": "claim", "id": "3", "task": first.pk, "node": "evil@node", "reply": reply,
         "ticket": "0" * 32},
    ]  # fmt: skip
    _, replies = handle(claims)
    assert [body["kind"] for _, body in replies] == ["refused"] * 3
    first.refresh_from_db()
    assert first.state == TaskState.QUEUED and first.node == ""

    _, [(queue, answer)] = handle([{**claims[0], "id": "4", "ticket": claim_ticket(first.pk)}])
    assert queue == reply and answer["kind"] == "chunk" and answer["task"] == first.pk
    # What the node gets grants its own chunk's frames and logs, nothing else.
    assert sorted(answer["outputs"]) == [str(n) for n in first.frames]
    assert all(
        name.startswith("shot_a_") for name in (o["name"] for o in answer["outputs"].values())
    )
    first.refresh_from_db()
    assert answer["token"] == token_of(first)
    assert not any(k in str(answer) for k in ("DATABASE", "SECRET", "AccessKeySecret"))


@pytest.mark.django_db
def test_answers_go_only_to_node_queues(
    project: Any, fake_software: Any, cluster: Any, scene_url: str
) -> None:
    job = submit_one(project, fake_software, cluster, scene_url, frames="1-2", nodes=1)
    task = job.tasks.get()
    ticket = claim_ticket(task.pk)
    for queue in (cluster.queue, "renderhub.events", "celery", "renderhub.node.x/../y"):
        claim = {"kind": "claim", "id": queue, "task": task.pk, "node": "evil@node",
                 "reply": queue, "ticket": ticket}  # fmt: skip
        _, replies = handle([claim])
        assert replies == []
    task.refresh_from_db()
    assert task.state == TaskState.QUEUED  # nothing was claimed for an unanswerable claim


@needs_redis
@pytest.mark.django_db(transaction=True)
def test_a_claim_over_the_broker_is_answered_on_the_claimers_queue_only(
    project: Any, fake_software: Any, cluster: Any, scene_url: str, manager: Any
) -> None:
    job = submit_one(project, fake_software, cluster, scene_url, frames="1-2", nodes=1)
    task = job.tasks.get()
    honest = Control(events_connection(manager.broker), "honest@node", cluster.name)
    eavesdropper = Control(events_connection(manager.broker), "evil@node", cluster.name)
    try:
        refused = honest.claim(task.pk, "f" * 32, timeout=10)
        assert refused["kind"] == "refused"
        answer = honest.claim(task.pk, claim_ticket(task.pk), timeout=10)
        assert answer["kind"] == "chunk"
        assert eavesdropper.take() == []
        again = eavesdropper.claim(task.pk, claim_ticket(task.pk), timeout=10)
        assert again["kind"] == "refused"  # claimed once: a second claim gets nothing
    finally:
        honest.close()
        eavesdropper.close()
    task.refresh_from_db()
    assert task.node == "honest@node"


@pytest.mark.django_db(transaction=True)
def test_a_stopped_nodes_grants_write_nothing_more(
    live_server: Any, project: Any, fake_software: Any, cluster: Any, scene_url: str
) -> None:
    """A node whose chunk was requeued (reaped, paused now) still holds its grants; its
    successor renders the same frames. The old grants must not overwrite them."""
    job = submit_one(project, fake_software, cluster, scene_url, frames="1-2", nodes=1)
    task = job.tasks.get()
    ticket = claim_ticket(task.pk)
    claim = {"kind": "claim", "id": "1", "task": task.pk, "node": "old@node",
             "reply": "renderhub.node.x.old.1", "ticket": ticket}  # fmt: skip
    _, [(_, old)] = handle([claim])
    frame_grant = old["outputs"]["1"]["file"]
    assert put(live_server.url, frame_grant["url"] + "png", b"old node, still its turn") == 201

    services.requeue_task(Task.objects.get(pk=task.pk), "reaped")
    _, [(_, new)] = handle([{**claim, "id": "2", "node": "new@node"}])
    assert new["kind"] == "chunk"
    assert put(live_server.url, new["outputs"]["1"]["file"]["url"] + "png", b"new") == 201
    assert put(live_server.url, frame_grant["url"] + "png", b"overwrite!") == 403
    backend, key = storage.resolve(storage.join(job.output_url, "shot_a_0001.png"))
    assert backend.read(key) == b"new"


@pytest.mark.django_db(transaction=True)
def test_a_grant_writes_a_frames_few_files_not_a_disk_full(
    live_server: Any, storage_root: Path, storage_url: str
) -> None:
    grant = write_grant(storage_url + "output/job-9/shot_0001.", 600, 100)
    codes = [put(live_server.url, grant["url"] + f"p{n}", b"x") for n in range(20)]
    assert codes[:16] == [201] * 16 and set(codes[16:]) == {403}
    assert put(live_server.url, grant["url"] + "p0", b"again") == 201  # replacing is fine
    assert len(list((storage_root / "output/job-9").iterdir())) == 16
