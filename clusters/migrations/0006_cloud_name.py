from django.conf import settings
from django.db import migrations, models


def name_existing(apps, schema_editor):
    """Clusters created before: the name they were created (and may be found) under."""
    Cluster = apps.get_model("clusters", "Cluster")
    tag = settings.RENDERHUB_DEPLOYMENT_TAG
    for cluster in Cluster.objects.filter(backend="batchcompute", auto_cluster=False):
        cluster.cloud_name = f"{tag}-{cluster.name}"
        cluster.save(update_fields=["cloud_name"])


class Migration(migrations.Migration):
    dependencies = [
        ("clusters", "0005_unassigned_workers"),
    ]

    operations = [
        migrations.AddField(
            model_name="cluster",
            name="cloud_name",
            field=models.CharField(blank=True, editable=False, max_length=128),
        ),
        migrations.RunPython(name_existing, migrations.RunPython.noop),
    ]
