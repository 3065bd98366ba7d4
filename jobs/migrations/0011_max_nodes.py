from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0010_job_state_finished"),
    ]

    operations = [
        migrations.AddField(
            model_name="renderjob",
            name="max_nodes",
            field=models.PositiveIntegerField(
                blank=True,
                help_text="At most this many of its chunks run at once (own machines); empty: no limit.",
                null=True,
            ),
        ),
    ]
