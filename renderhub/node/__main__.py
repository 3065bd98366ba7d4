"""``python -m renderhub.node --broker redis://… --manager-url https://… --cluster NAME``

Starts a render node: a Celery worker on the cluster's queue ``render.<NAME>`` that holds
only the broker's address and credential (see README, "Adding render machines").
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

from .chunk import NodeConfig
from .worker import SETTINGS, app

SECRETS = ("DATABASE_URL", "SECRET_KEY", "OSS_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_ACCESS_KEY_SECRET")


def parse(argv: list[str]) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="python -m renderhub.node", description=__doc__)
    parser.add_argument(
        "--broker",
        default=env("RENDERHUB_BROKER_URL", ""),
        help="redis://user:password@host:6379/0 (better in RENDERHUB_BROKER_URL: a command "
        "line is readable by every user of the machine)",
    )
    parser.add_argument(
        "--manager-url",
        default=env("RENDERHUB_MANAGER_URL", ""),
        help="the manager's address as this machine reaches it (links to local-disk storage)",
    )
    parser.add_argument(
        "--cluster",
        action="append",
        default=[c for c in env("RENDERHUB_CLUSTERS", "").split(",") if c],
        help="a cluster whose queue render.<cluster> this node serves (repeatable)",
    )
    parser.add_argument(
        "--name", default=env("RENDERHUB_NODE_NAME", f"node@{socket.gethostname()}")
    )
    parser.add_argument("-c", "--concurrency", type=int, default=int(env("RENDERHUB_SLOTS", "2")))
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=Path(env("RENDERHUB_NODE_WORK_DIR", str(Path.home() / ".renderhub-node"))),
    )
    parser.add_argument("--sandbox-path", action="append", default=[], help="e.g. /opt/blender")
    parser.add_argument("--threads", type=int, default=0, help="renderer threads (0: all cores)")
    parser.add_argument("--report-every", type=float, default=10.0, help="seconds")
    parser.add_argument(
        "--warm-seconds",
        type=float,
        default=float(env("RENDERHUB_WARM_SECONDS", "10")),
        help="keep a job's Blender this long after a chunk for the job's next one (0: off)",
    )
    parser.add_argument(
        "--private-queue",
        action="store_true",
        default=env("RENDERHUB_PRIVATE_QUEUE", "") not in ("", "0"),
        help="the cluster has a node user of its own (manage.py node_user): its queue is "
        "under its own key prefix",
    )
    parser.add_argument("--pool", default="prefork", choices=("prefork", "threads", "solo"))
    parser.add_argument("--loglevel", default="info")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    if not args.broker.startswith(("redis://", "rediss://")):
        print("--broker must be the manager's Redis (redis://user:password@host:6379/0)")
        return 2
    if not args.cluster:
        print("--cluster: name at least one cluster this node renders for")
        return 2
    held = [name for name in SECRETS if os.environ.get(name)]
    if held:  # nothing here reads them, but a node is where they must not be
        print(f"warning: this node's environment holds {', '.join(held)}; a node needs none")
    args.work_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    SETTINGS.broker = args.broker
    SETTINGS.clusters = list(dict.fromkeys(args.cluster))
    SETTINGS.report_every = args.report_every
    SETTINGS.config = NodeConfig(
        name=args.name,
        manager_url=args.manager_url,
        work_dir=args.work_dir.resolve(),
        sandbox_paths=tuple(args.sandbox_path),
        cpus=args.threads,
        warm_seconds=args.warm_seconds,
    )
    options: dict[str, object] = {"visibility_timeout": 7 * 3600}
    if args.private_queue:
        if len(SETTINGS.clusters) != 1:
            print("--private-queue: a node user serves one cluster; name exactly one")
            return 2
        options["global_keyprefix"] = f"renderhub.cluster.{SETTINGS.clusters[0]}:"
    app.conf.update(broker_url=args.broker, broker_transport_options=options)
    queues = ",".join(f"render.{name}" for name in SETTINGS.clusters)
    app.worker_main(
        [
            "worker",
            "-Q",
            queues,
            "-c",
            str(args.concurrency),
            "-n",
            args.name,
            "-l",
            args.loglevel,
            "--pool",
            args.pool,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
