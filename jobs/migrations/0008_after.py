from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0007_paused_at"),
    ]

    operations = [
        migrations.AddField(
            model_name="renderjob",
            name="after",
            field=models.ManyToManyField(
                blank=True,
                help_text="Jobs this one waits for: it starts when they have all finished.",
                related_name="dependents",
                to="jobs.renderjob",
            ),
        ),
        migrations.AddField(
            model_name="renderjob",
            name="waiting",
            field=models.BooleanField(
                default=False,
                help_text="Some job it runs after has not finished yet (jobs.scheduling).",
            ),
        ),
        migrations.AddField(
            model_name="renderjob",
            name="hold_reason",
            field=models.TextField(
                blank=True,
                help_text="Why it waits although nothing upstream runs (one failed).",
            ),
        ),
    ]
