"""``manage.py demo``: set up the demo, start web + worker + beat, render 48 real frames.

Interactive, it keeps the stack running until Ctrl-C. Unattended (stdin is not a
terminal, or DEMO_EXIT=1) it stops after the render and exits 0 only if every frame
rendered, so scripts and CI can run it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from clusters.models import ClusterNode
from ops import demo
from renderhub import storage

STOP_GRACE_SECONDS = 30


class Command(BaseCommand):
    help = "Render the demo scene on this machine with the embedded defaults."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--frames", default="1-48", help="frames to render (default 1-48)")
        parser.add_argument("--nodes", type=int, default=2, help="chunks to split them into")
        parser.add_argument("--port", type=int, default=int(os.environ.get("DEMO_PORT", 8000)))
        parser.add_argument(
            "--exit", action="store_true", help="stop after the render (default when unattended)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        unattended = options["exit"] or os.environ.get("DEMO_EXIT") == "1" or not sys.stdin.isatty()
        self.stdout.write("Setting up the demo project, cluster and scene…")
        try:
            setup = demo.setup()
        except demo.DemoError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"  scene: {setup.scene_url}")
        stack = Stack(Path(settings.VAR_DIR) / "log", options["port"])
        try:
            stack.start()
            self.stdout.write(
                f"Started web (:{options['port']}), render worker and beat; logs in {stack.log_dir}"
            )
            stack.wait_for_worker(setup.cluster.pk)
            ok = self.render(setup, options)
            self.show_where(setup, options["port"])
            if unattended:
                if not ok:
                    raise CommandError("The demo render did not finish; see the messages above.")
                return
            self.stdout.write("The stack keeps running: press Ctrl-C to stop it.")
            with contextlib.suppress(KeyboardInterrupt):
                stack.watch()
        finally:
            self.stdout.write("Stopping web, worker and beat…")
            stack.stop()

    def render(self, setup: demo.Demo, options: dict[str, Any]) -> bool:
        try:
            call_command(
                "submit_render",
                "--project", setup.project.name,
                "--software", setup.software.name,
                "--cluster", setup.cluster.name,
                "--scene", setup.scene_url,
                "--frames", options["frames"],
                "--nodes", str(options["nodes"]),
                "--wait",
                stdout=self.stdout,
                stderr=self.stderr,
            )  # fmt: skip
        except CommandError as exc:
            self.stderr.write(str(exc))
            return False
        return True

    def show_where(self, setup: demo.Demo, port: int) -> None:
        job = setup.project.render_jobs.order_by("-pk").first()
        if job is not None:
            backend, key = storage.resolve(job.output_url)
            where = backend.local_path(key) or job.output_url
            self.stdout.write(self.style.SUCCESS(f"Frames: {where}"))
        self.stdout.write(f"Admin:  http://127.0.0.1:{port}/admin/")
        if not get_user_model().objects.filter(is_superuser=True).exists():
            self.stdout.write(
                "No admin login exists yet: create one with "
                "`.venv/bin/python manage.py createsuperuser` (there are no default passwords)."
            )


class Stack:
    """The web, render worker and beat processes of the demo, each in its own session."""

    def __init__(self, log_dir: Path, port: int) -> None:
        self.log_dir = log_dir
        self.port = port
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def commands(self) -> dict[str, list[str]]:
        bin_dir = Path(sys.executable).parent
        celery = [str(bin_dir / "celery"), "-A", "renderhub"]
        return {
            "web": [
                str(bin_dir / "gunicorn"), "renderhub.wsgi",
                "--bind", f"127.0.0.1:{self.port}", "--workers", "2", "--timeout", "60",
            ],
            "worker": [
                *celery, "worker", "-Q", "renderhub,render.local", "-c", "2",
                "-n", "demo-render@%h", "-l", "info",
            ],
            "beat": [*celery, "beat", "-l", "info", "--pidfile="],
        }  # fmt: skip

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        # The demo serves plain HTTP on this machine, so session cookies can't be Secure.
        env = {**os.environ, "DJANGO_SECURE_COOKIES": "false"}
        for name, argv in self.commands().items():
            with open(self.log_dir / f"{name}.log", "ab") as log:
                self.processes[name] = subprocess.Popen(
                    argv,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=settings.BASE_DIR,
                    env=env,
                    start_new_session=True,
                )

    def check(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise CommandError(
                    f"The {name} process exited with {process.returncode}; "
                    f"see {self.log_dir / (name + '.log')}."
                )

    def wait_for_worker(self, cluster_id: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check()
            if ClusterNode.objects.filter(
                cluster_id=cluster_id, name__startswith="demo-render@"
            ).exists():
                return
            time.sleep(0.5)
        raise CommandError(f"The render worker did not start; see {self.log_dir / 'worker.log'}.")

    def watch(self) -> None:
        while True:
            self.check()
            time.sleep(1)

    def stop(self) -> None:
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for process in self.processes.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
