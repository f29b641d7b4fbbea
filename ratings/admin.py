"""Django admin for every model; read-mostly where rows are produced by the platform."""

from django.contrib import admin, messages

from . import studies
from .models import (
    Condition,
    Rater,
    Rating,
    Session,
    SessionItem,
    SourceImage,
    Stimulus,
    Study,
    StudyDataset,
    absolute_url,
)


@admin.register(Study)
class StudyAdmin(admin.ModelAdmin):
    list_display = ("name", "state", "seed", "assignment", "raters_target", "created_at")
    search_fields = ("name", "title")
    readonly_fields = ("config_text", "config", "config_sha256", "open_enrolment_token", "created_at")
    actions = ["invite_five_raters"]

    @admin.action(description="Create 5 rater invitations")
    def invite_five_raters(self, request, queryset):
        for study in queryset:
            raters = studies.create_invitations(study, 5)
            # SITE_URL, not this request's host: the links are for raters, who may reach the site elsewhere.
            links = ", ".join(absolute_url(r.get_absolute_url()) for r in raters)
            self.message_user(request, f"{study.name}: {links}", messages.SUCCESS)


@admin.register(StudyDataset)
class StudyDatasetAdmin(admin.ModelAdmin):
    list_display = ("study", "name", "role", "folder")
    list_filter = ("study", "role")


@admin.register(SourceImage)
class SourceImageAdmin(admin.ModelAdmin):
    list_display = ("dataset", "name", "width", "height", "hr_sha256")
    list_filter = ("dataset__study", "dataset")
    search_fields = ("name",)


@admin.register(Condition)
class ConditionAdmin(admin.ModelAdmin):
    list_display = ("study", "name", "kind", "position")
    list_filter = ("study", "kind")


@admin.register(Stimulus)
class StimulusAdmin(admin.ModelAdmin):
    list_display = ("image", "condition", "state", "psnr_y", "ssim_y", "lpips", "dists", "niqe", "worker", "seconds")
    list_filter = ("study", "state", "condition__name", "image__dataset__name")
    search_fields = ("image__name", "public_id", "sha256")
    readonly_fields = [f.name for f in Stimulus._meta.fields]


class SessionItemInline(admin.TabularInline):
    model = SessionItem
    fields = ("position", "kind", "stimulus", "expected_score", "shown_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False


@admin.register(Rater)
class RaterAdmin(admin.ModelAdmin):
    list_display = ("label", "study", "source", "external_id", "consent_at", "created_at")
    list_filter = ("study", "source")
    search_fields = ("label", "external_id", "token")
    readonly_fields = ("token", "created_at", "device_pixel_ratio", "viewport", "user_agent")


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):
    list_display = ("rater", "state", "position", "started_at", "completed_at", "completion_code")
    list_filter = ("rater__study", "state")
    inlines = [SessionItemInline]


@admin.register(Rating)
class RatingAdmin(admin.ModelAdmin):
    list_display = ("rater", "stimulus", "score", "response_ms", "created_at")
    list_filter = ("rater__study", "score")
    readonly_fields = ("item", "rater", "stimulus", "score", "response_ms", "created_at")

    def has_add_permission(self, request):
        return False  # ratings come from raters or import_ratings, never typed in
