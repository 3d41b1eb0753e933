# Luma U: lesson progress and completed tracks, per membership, under row-level security.

import django.db.models.deletion
from django.db import migrations, models

from lumapay.tenant_rls import tenant_policy_reverse_sql, tenant_policy_sql

TENANT_TABLES = ["helpcenter_lessonprogress", "helpcenter_trackcompletion"]


class Migration(migrations.Migration):

    # Luma U follows the Help Center's own migration (one line of helpcenter migrations).
    dependencies = [
        ('helpcenter', '0001_help_articles_and_tickets'),
        ('org_profile', '0009_organization_profile'),
    ]

    operations = [
        migrations.CreateModel(
            name='LessonProgress',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('track', models.CharField(help_text='the track the lesson belongs to (content.TRACKS)', max_length=40)),
                ('lesson', models.CharField(help_text="the lesson's slug (content.py)", max_length=80)),
                ('read_at', models.DateTimeField(blank=True, help_text='when the member first opened the lesson', null=True)),
                ('attempts', models.PositiveIntegerField(default=0, help_text='quiz answers sent')),
                ('last_score', models.PositiveSmallIntegerField(blank=True, null=True)),
                ('best_score', models.PositiveSmallIntegerField(blank=True, null=True)),
                ('question_count', models.PositiveSmallIntegerField(default=0)),
                ('passed_at', models.DateTimeField(blank=True, help_text='when every answer was first right', null=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('membership', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='luma_u_lessons', to='org_profile.membership')),
                ('organization', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='org_profile.organization')),
            ],
            options={
                'verbose_name': 'Luma U lesson progress',
                'verbose_name_plural': 'Luma U lesson progress',
                'constraints': [models.UniqueConstraint(fields=('membership', 'lesson'), name='luma_u_progress_one_per_lesson')],
            },
        ),
        migrations.CreateModel(
            name='TrackCompletion',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('track', models.CharField(max_length=40)),
                ('completed_at', models.DateTimeField(help_text="when the last of the track's quizzes was passed")),
                ('verification_code', models.CharField(help_text='printed on the certificate', max_length=20, unique=True)),
                ('membership', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='luma_u_completions', to='org_profile.membership')),
                ('organization', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='org_profile.organization')),
            ],
            options={
                'verbose_name': 'Luma U completed track',
                'constraints': [models.UniqueConstraint(fields=('membership', 'track'), name='luma_u_completion_one_per_track')],
            },
        ),
        migrations.RunSQL(
            "".join(tenant_policy_sql(table) for table in TENANT_TABLES),
            "".join(tenant_policy_reverse_sql(table) for table in TENANT_TABLES),
        ),
    ]
