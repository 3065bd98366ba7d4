from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("workflows", "0005_run_warnings"),
    ]

    operations = [
        migrations.AddField(
            model_name="workflowrun",
            name="engine_url",
            field=models.CharField(
                blank=True, help_text="The Cromwell server the run was sent to.", max_length=1024
            ),
        ),
    ]
