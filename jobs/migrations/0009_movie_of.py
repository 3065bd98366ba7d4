import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0008_after"),
    ]

    operations = [
        migrations.AddField(
            model_name="renderjob",
            name="movie_of",
            field=models.ForeignKey(
                blank=True,
                help_text="The render job whose finished frames this job encodes into a preview movie.",
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="movies",
                to="jobs.renderjob",
            ),
        ),
    ]
