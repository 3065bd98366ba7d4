"""Write a demo workflow bundle: ``manage.py gen_demo --type gatk|germline DIR``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from workflows import demos


class Command(BaseCommand):
    help = (
        "Write a workflow bundle into DIR (like `bcs gen DIR -t gatk`): 'germline' runs "
        "here for real; 'gatk' is the GATK4 single-sample bundle for BatchCompute's Cromwell."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("dir", metavar="DIR")
        parser.add_argument("--type", "-t", required=True, choices=["germline", "gatk"])
        parser.add_argument(
            "--project", help="Project named in the submit command (germline: demo)."
        )
        parser.add_argument(
            "--oss-path",
            default="oss://your-bucket/renderhub-gatk/",
            metavar="URL",
            help="gatk: OSS folder holding the references and data, and the run's folders.",
        )
        parser.add_argument(
            "--instance-type", default="ecs.sn2ne.4xlarge", help="gatk: BCS instance type."
        )
        parser.add_argument("--image", default="img-gatk4", help="gatk: BCS VM image id.")
        parser.add_argument(
            "--force", action="store_true", help="Write into DIR even if it is not empty."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        target = Path(options["dir"]).expanduser()
        if target.exists() and not target.is_dir():
            raise CommandError(f"{target} is not a folder.")
        if target.is_dir() and any(target.iterdir()) and not options["force"]:
            raise CommandError(f"{target} is not empty; use --force to write into it anyway.")
        if options["type"] == "germline":
            files = demos.germline(target, project=options["project"] or "demo")
            start = "./submit.sh"
        else:
            if not options["oss_path"].startswith("oss://"):
                raise CommandError("--oss-path must be an oss:// folder.")
            files = demos.gatk(
                target,
                oss_path=options["oss_path"],
                project=options["project"] or "genomics",
                instance_type=options["instance_type"],
                image=options["image"],
            )
            start = "./main.sh"
        for path in files:
            self.stdout.write(f"  {path}")
        self.stdout.write(f"Wrote {len(files)} files to {target}; see README.md, then {start}")
