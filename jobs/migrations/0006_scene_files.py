from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0005_job_warnings"),
    ]

    operations = [
        migrations.AddField(
            model_name="renderjob",
            name="scene_files",
            field=models.JSONField(
                blank=True,
                help_text="What the scene needs on a node, fixed at submit (jobs.scene_manifest): each file's URL and place, paths to rewrite, files accepted missing.",
                null=True,
            ),
        ),
    ]
