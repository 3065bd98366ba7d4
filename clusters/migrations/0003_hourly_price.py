from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("clusters", "0002_batchcompute")]

    operations = [
        migrations.AddField(
            model_name="cluster",
            name="hourly_price",
            field=models.DecimalField(
                blank=True,
                decimal_places=4,
                help_text="Price of one node for an hour, for cost estimates on the submit page.",
                max_digits=10,
                null=True,
            ),
        ),
    ]
