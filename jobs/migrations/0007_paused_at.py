from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0006_scene_files"),
    ]

    operations = [
        migrations.AddField(
            model_name="renderjob",
            name="paused_at",
            field=models.DateTimeField(
                blank=True,
                help_text="Set while the job is paused (jobs.scheduling): no new chunk of it starts.",
                null=True,
            ),
        ),
    ]
