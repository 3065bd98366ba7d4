from django.db import migrations, models


class Migration(migrations.Migration):
    """The finished list and the dashboard's failures read ended jobs newest first: an
    index instead of sorting every ended job per request (issue 19)."""

    dependencies = [
        ("jobs", "0009_movie_of"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="renderjob",
            index=models.Index(fields=["state", "-finished_at"], name="job_state_finished"),
        ),
    ]
