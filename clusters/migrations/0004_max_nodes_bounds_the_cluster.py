import django.core.validators
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("clusters", "0003_hourly_price")]

    operations = [
        migrations.AlterField(
            model_name="cluster",
            name="max_nodes",
            field=models.PositiveIntegerField(
                default=16,
                help_text="The most nodes the cluster may run, and one job may use.",
                validators=[django.core.validators.MinValueValidator(1)],
            ),
        ),
    ]
