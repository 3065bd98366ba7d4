from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0011_max_nodes"),
    ]

    operations = [
        migrations.AddField(
            model_name="renderjob",
            name="chunk_seconds",
            field=models.PositiveIntegerField(
                blank=True,
                help_text="Adaptive chunks: each about this many seconds of measured render time, the work left re-split as frames finish (jobs.chunking); empty: fixed chunks.",
                null=True,
            ),
        ),
    ]
