from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("clusters", "0008_broker_user"),
    ]

    operations = [
        migrations.AddField(
            model_name="clusternode",
            name="render_threads",
            field=models.PositiveIntegerField(
                blank=True,
                help_text="Renderer threads per chunk, as the node reported (0: every core); "
                "unknown: the manager's RENDER_THREADS.",
                null=True,
            ),
        ),
    ]
