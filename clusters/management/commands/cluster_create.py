"""Create a cluster: ``manage.py cluster_create NAME --image I --instance-type T …``."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from clusters import services
from clusters.choices import Backend
from clusters.models import Cluster
from images.models import ComputeImage
from renderhub.compute import ComputeError


class Command(BaseCommand):
    help = (
        "Create a BatchCompute cluster (a standing one, or --auto: VMs per job) or, with "
        "--backend celery, a queue for your own render workers."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", nargs="?", help="Letters, digits, '-' and '_'.")
        parser.add_argument("--image", help="Compute image name (or id).")
        parser.add_argument("--backend", choices=Backend.values, default=Backend.BATCHCOMPUTE)
        parser.add_argument("--instance-type", default="", help="e.g. bcs.a2.large")
        parser.add_argument("--disk-type", default="", help="e.g. cloud_ssd")
        parser.add_argument("--disk-size", type=int, default=40, metavar="GB")
        parser.add_argument("--nodes", type=int, default=1, help="VMs to run (default 1).")
        parser.add_argument(
            "--max-nodes",
            type=int,
            default=16,
            help="The most nodes the cluster may run and one job may use.",
        )
        parser.add_argument("--spot", action="store_true", help="Spot (preemptible) VMs.")
        parser.add_argument(
            "--spot-price", type=Decimal, metavar="P", help="Hourly price limit for spot VMs."
        )
        parser.add_argument(
            "--auto", action="store_true", help="No standing cluster: VMs per job (AutoCluster)."
        )
        parser.add_argument(
            "--choices",
            action="store_true",
            help="Only list the instance types, disk types and images BatchCompute offers.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["choices"]:
            self.choices()
            return
        if not options["name"] or not options["image"]:
            raise CommandError("Give the cluster's NAME and --image.")
        image = _image(options["image"])
        cluster = Cluster(
            name=options["name"],
            backend=options["backend"],
            image=image,
            instance_type=options["instance_type"],
            disk_type=options["disk_type"],
            disk_size_gb=options["disk_size"],
            desired_nodes=options["nodes"],
            max_nodes=options["max_nodes"],
            spot=options["spot"],
            spot_price_limit=options["spot_price"],
            auto_cluster=options["auto"],
        )
        try:
            cluster = services.create(cluster)
        except ValidationError as exc:
            raise CommandError(_messages(exc)) from None
        except ComputeError as exc:
            raise CommandError(f"Creating cluster {cluster.name} failed: {exc}") from None
        where = f" as {cluster.cloud_cluster_id}" if cluster.cloud_cluster_id else ""
        self.stdout.write(f"Created cluster #{cluster.pk} {cluster.name}{where} ({cluster.state})")

    def choices(self) -> None:
        try:
            choices = services.cloud_choices(refresh=True)
        except ComputeError as exc:
            raise CommandError(str(exc)) from None
        spot = set(choices.spot_instance_types)
        self.stdout.write("Instance types (--instance-type; * also as --spot):")
        for value, label in choices.instance_types:
            self.stdout.write(f"  {label}{' *' if value in spot else ''}")
        self.stdout.write(f"Disk types (--disk-type): {', '.join(choices.disk_types)}")
        self.stdout.write("Images (a compute image's node image id):")
        for image_id, name in choices.images:
            self.stdout.write(f"  {image_id}  {name}")


def _image(ident: str) -> ComputeImage:
    image = ComputeImage.objects.filter(name=ident).first()
    if image is None and ident.isdigit():
        image = ComputeImage.objects.filter(pk=int(ident)).first()
    if image is None:
        names = ", ".join(ComputeImage.objects.values_list("name", flat=True)) or "none"
        raise CommandError(f"No compute image {ident!r} (images: {names}).")
    return image


def _messages(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(
            f"{field.replace('_', ' ')}: {' '.join(messages)}"
            if field != "__all__"
            else " ".join(messages)
            for field, messages in exc.message_dict.items()
        )
    return " ".join(exc.messages)
