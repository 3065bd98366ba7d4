from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("projects", "0001_initial")]

    operations = [
        migrations.AlterModelOptions(
            name="project",
            options={
                "ordering": ["name"],
                "permissions": [("manage_members", "Can add and remove project members")],
            },
        ),
    ]
