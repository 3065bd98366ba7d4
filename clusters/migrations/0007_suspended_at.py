from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("clusters", "0006_cloud_name"),
    ]

    operations = [
        migrations.AddField(
            model_name="cluster",
            name="suspended_at",
            field=models.DateTimeField(
                blank=True,
                editable=False,
                help_text="Set while the cluster is suspended for maintenance: its nodes take no new chunks (running ones finish).",
                null=True,
            ),
        ),
    ]
