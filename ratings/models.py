"""Studies, their stimuli, raters, rating sessions and ratings.

Invariants are database constraints where the database can hold them (one stimulus per image and
condition, one rating per session item, scores in 1..5), so that concurrent workers, two
``run_study`` processes or a double-clicked button can never duplicate or lose a row.
"""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from .crowd import CrowdConfig
from .pairwise_design import PAIRED_PROTOCOLS, PairwiseDesign
from .study_file import STUDY_NAME_MAX, RatingDesign, validate_study_name
from .worker_checks import AttentionRules, Qualification


def new_token() -> str:
    """An unguessable URL-safe token (rater links, opaque stimulus ids)."""
    return secrets.token_urlsafe(18)


def absolute_url(path: str, base_url: str | None = None) -> str:
    """``path`` (a ``get_absolute_url()``) on the site as raters reach it: ``base_url`` or ``SITE_URL``.

    Links are handed to raters (printed, e-mailed, pasted into a crowd platform), so they start with
    the public address, not the host a researcher's request happened to use (a tunnel, an internal name).
    """
    return (base_url or settings.SITE_URL).rstrip("/") + path


def _design_property(key: str, doc: str) -> property:
    return property(lambda study: getattr(study.design, key), doc=doc)


class Study(models.Model):
    """A MOS study: what is rated (datasets x conditions) and how (the rating design).

    The study file is stored as given (``config_text``) and parsed (``config``); everything else
    about the design is read from ``config`` (``design``), never copied into columns of its own.
    """

    class State(models.TextChoices):
        GENERATING = "generating", "generating stimuli"
        READY = "ready", "ready for raters"
        CLOSED = "closed", "closed"

    class Assignment(models.TextChoices):
        ALL = "all", "every rater rates every stimulus"
        BALANCED = "balanced", "balanced subsets reaching a target number of ratings per stimulus"

    name = models.SlugField(max_length=STUDY_NAME_MAX, unique=True, validators=[validate_study_name])
    title = models.CharField(max_length=200, blank=True)
    seed = models.BigIntegerField(help_text="seeds every random choice of the study (orders, subsets)")
    scale = models.PositiveSmallIntegerField(default=4)
    config_text = models.TextField(help_text="the study file as given (TOML)")
    config = models.JSONField(help_text="the parsed study file; config['rating'] is the rating design")
    state = models.CharField(max_length=20, choices=State.choices, default=State.GENERATING)
    open_enrolment_token = models.CharField(max_length=40, unique=True, default=new_token)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "studies"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def design(self) -> RatingDesign:
        """The rating design, parsed from ``config['rating']`` once per instance (again if it changes).

        Keys left out take the study file's defaults, as a study file without them does.
        """
        rating = (self.config or {}).get("rating", {})
        cached = self.__dict__.get("_design")
        if cached is None or cached[0] != rating:
            cached = self.__dict__["_design"] = (dict(rating), RatingDesign(**rating))
        return cached[1]

    # The design under the names the rest of the code reads (sessions, enrolment, export, admin).
    raters_target = _design_property("raters", "invitations run_study creates; the open-enrolment target")
    calibration_images = _design_property("calibration_images", "BSD200 images shown first, score told")
    gold_items = _design_property("gold_items", "unannounced NN/HR checks among the test items")
    break_every = _design_property("break_every", "offer a break every N items; 0: never")
    assignment = _design_property("assignment", "all or balanced (Study.Assignment)")
    ratings_per_stimulus = _design_property("ratings_per_stimulus", "balanced: ratings each stimulus reaches")
    items_per_rater = _design_property("items_per_rater", "balanced: test items per rater")
    repeat_dataset = _design_property("repeat_dataset", "test-retest: the repeated stimuli's dataset")
    repeat_method = _design_property("repeat_method", "test-retest: the repeated stimuli's method")
    repeat_images = _design_property("repeat_images", "test-retest: how many images are shown twice")

    @property
    def protocol(self) -> str:
        """``acr`` (1-5 ratings), ``pairwise`` or ``2afc-real`` (paired judgments)."""
        return (self.config or {}).get("protocol", "acr")

    @property
    def pairwise(self) -> PairwiseDesign:
        """The paired protocol's design, from ``config['pairwise']`` (the ``acr`` default without one)."""
        return PairwiseDesign(**(self.config or {}).get("pairwise", {"protocol": self.protocol}))

    @property
    def is_paired(self) -> bool:
        return self.protocol in PAIRED_PROTOCOLS

    @property
    def crowd(self) -> CrowdConfig | None:
        """The crowd platform's conventions (``[crowd]``), None for a study not run on one."""
        table = (self.config or {}).get("crowd")
        return CrowdConfig(**table) if table else None

    @property
    def qualification(self) -> Qualification | None:
        """What a worker must pass before rating (``[qualification]``); None: nothing."""
        table = (self.config or {}).get("qualification")
        return Qualification.from_json(table) if table else None

    @property
    def attention(self) -> AttentionRules | None:
        """What is checked as answers arrive (``[attention]``); None: nothing."""
        table = (self.config or {}).get("attention")
        return AttentionRules.from_json(table) if table else None

    @property
    def config_sha256(self) -> str:
        """SHA-256 of the study file as given: whether a rerun of run_study brings a new file."""
        return hashlib.sha256(self.config_text.encode("utf-8")).hexdigest()

    def get_enrolment_url(self) -> str:
        """The open-enrolment link's path (crowd platforms append ``?worker_id=...``)."""
        return reverse("ratings:join", args=[self.open_enrolment_token])


class StudyDataset(models.Model):
    """A test set of a study (or its calibration set) and the conditions shown on it."""

    class Role(models.TextChoices):
        TEST = "test", "rated"
        CALIBRATION = "calibration", "calibration and gold items (not in the study's MOS)"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="datasets")
    name = models.CharField(max_length=100)
    folder = models.CharField(max_length=500, help_text="where the HR/LR files were read")
    role = models.CharField(max_length=12, choices=Role.choices, default=Role.TEST)
    position = models.PositiveSmallIntegerField(default=0)
    conditions = models.ManyToManyField("Condition", related_name="datasets")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["study", "name"], name="unique_dataset_per_study")]
        ordering = ["study", "position"]

    def __str__(self) -> str:
        return f"{self.study.name}/{self.name}"


class SourceImage(models.Model):
    """One test image: its HR file (and LR file, or none when LR is made from HR)."""

    dataset = models.ForeignKey(StudyDataset, on_delete=models.CASCADE, related_name="images")
    name = models.CharField(max_length=200)
    hr_path = models.CharField(max_length=500)
    lr_path = models.CharField(max_length=500, blank=True)
    hr_sha256 = models.CharField(max_length=64)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["dataset", "name"], name="unique_image_per_dataset")]
        ordering = ["dataset", "name"]

    def __str__(self) -> str:
        return f"{self.dataset}/{self.name}"


class Condition(models.Model):
    """A method that makes a version of every image: interpolation, network, external folder, or HR."""

    class Kind(models.TextChoices):
        INTERPOLATION = "interpolation"
        NETWORK = "network"
        EXTERNAL = "external"
        REFERENCE = "reference", "reference (HR)"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="conditions")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    external_dir = models.CharField(max_length=500, blank=True)
    provenance = models.JSONField(default=dict, blank=True, help_text="weights file and hash, model card, ...")
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["study", "name"], name="unique_condition_per_study")]
        ordering = ["study", "position"]

    def __str__(self) -> str:
        return self.name

    @property
    def queue(self) -> str:
        """Celery queue: networks go where the GPUs are; everything else is cheap CPU work."""
        return "gpu" if self.kind == self.Kind.NETWORK else "cpu"


class Stimulus(models.Model):
    """One (image, condition) version shown to raters, with its provenance and quality metrics."""

    class State(models.TextChoices):
        PENDING = "pending"
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="stimuli")
    image = models.ForeignKey(SourceImage, on_delete=models.CASCADE, related_name="stimuli")
    condition = models.ForeignKey(Condition, on_delete=models.CASCADE, related_name="stimuli")
    public_id = models.CharField(max_length=40, unique=True, default=new_token,
                                 help_text="opaque id used in rater-facing URLs (reveals nothing)")
    file = models.CharField(max_length=500, blank=True, help_text="path relative to MEDIA_ROOT")
    sha256 = models.CharField(max_length=64, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    psnr_y = models.FloatField(null=True, blank=True)
    ssim_y = models.FloatField(null=True, blank=True)
    lpips = models.FloatField(null=True, blank=True)
    dists = models.FloatField(null=True, blank=True, help_text="DISTS against HR (lower is closer)")
    niqe = models.FloatField(null=True, blank=True, help_text="NIQE, no reference (lower is more natural); HR too")
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING, db_index=True)
    task_id = models.CharField(max_length=64, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    worker = models.CharField(max_length=200, blank=True)
    device = models.CharField(max_length=40, blank=True)
    seconds = models.FloatField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "stimuli"
        constraints = [models.UniqueConstraint(fields=["image", "condition"], name="one_stimulus_per_image_condition")]
        indexes = [models.Index(fields=["study", "state"])]
        ordering = ["image", "condition"]

    def __str__(self) -> str:
        return f"{self.image} [{self.condition}]"


class Rater(models.Model):
    """A person who rates, known by a secret token (their link) and optionally a crowd worker id."""

    class Source(models.TextChoices):
        INVITATION = "invitation"
        OPEN = "open", "open enrolment"
        IMPORTED = "imported", "imported ratings"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="raters")
    token = models.CharField(max_length=40, unique=True, default=new_token)
    label = models.CharField(max_length=100, help_text="the rater id in exports (r001, a worker id, ...)")
    source = models.CharField(max_length=12, choices=Source.choices, default=Source.INVITATION)
    external_id = models.CharField(max_length=200, blank=True, help_text="crowd platform worker id")
    platform_ids = models.JSONField(default=dict, blank=True,
                                    help_text="the crowd platform's other ids (STUDY_ID, assignmentId, ...)")
    consent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Viewing conditions reported by the browser when the session started.
    device_pixel_ratio = models.FloatField(null=True, blank=True)
    viewport = models.CharField(max_length=40, blank=True)
    user_agent = models.CharField(max_length=400, blank=True)
    screen = models.CharField(max_length=40, blank=True, help_text="window.screen in CSS pixels (1920x1080)")
    device_type = models.CharField(max_length=10, blank=True,
                                   help_text="desktop, tablet or phone (ratings.worker_checks.classify_device)")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["study", "label"], name="unique_rater_label_per_study"),
            models.UniqueConstraint(fields=["study", "external_id"], condition=~Q(external_id=""),
                                    name="one_enrolment_per_external_id"),
        ]
        ordering = ["study", "label"]

    def __str__(self) -> str:
        return f"{self.study.name}:{self.label}"

    def get_absolute_url(self) -> str:
        """The rater's personal link (path): their session starts or resumes there."""
        return reverse("ratings:home", args=[self.token])


class Session(models.Model):
    """A rater's pass through their assignment: the stored order and how far they are."""

    class State(models.TextChoices):
        CONSENT = "consent", "awaiting consent"
        CALIBRATION = "calibration"
        RATING = "rating"
        COMPLETE = "complete"
        EXPIRED = "expired", "expired (stalled; its unrated items went back)"
        SCREENED_OUT = "screened_out", "screened out (qualification or attention checks)"

    #: States in which a session takes no more answers; the rater is shown its exit.
    ENDED_STATES = (State.COMPLETE, State.EXPIRED, State.SCREENED_OUT)
    #: Under way: consent given, not over (what expires when stalled).
    LIVE_STATES = (State.CALIBRATION, State.RATING)
    #: Over without finishing: their unrated items went back to the pool, their place is free.
    GONE_STATES = (State.EXPIRED, State.SCREENED_OUT)

    rater = models.OneToOneField(Rater, on_delete=models.CASCADE, related_name="session")
    state = models.CharField(max_length=12, choices=State.choices, default=State.CONSENT)
    position = models.PositiveIntegerField(default=0, help_text="index of the next item to show")
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    completion_code = models.CharField(max_length=20, blank=True)
    # The last time the session moved (consent, an answer): stalled sessions are found by it.
    last_active_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True, help_text="when it expired or was screened out")
    end_reason = models.CharField(max_length=300, blank=True, help_text="why it expired or was screened out, in words")
    # Set when the items are drawn; calibration items come first, so progress needs no counting query.
    calibration_items = models.PositiveIntegerField(default=0)
    planned_scored_items = models.PositiveIntegerField(
        default=0, help_text="scored items planned for the session (test, repeat and gold), not ratings given")

    class Meta:
        indexes = [models.Index(fields=["state", "last_active_at"])]

    def __str__(self) -> str:
        return f"session of {self.rater}"

    @property
    def is_over(self) -> bool:
        return self.state in self.ENDED_STATES


class SessionItem(models.Model):
    """One step of a session, in the order stored at creation (a reload resumes at the same place)."""

    class Kind(models.TextChoices):
        CALIBRATION = "calibration", "calibration (score told)"
        TEST = "test"
        REPEAT = "repeat", "repeat of a test item (test-retest)"
        GOLD = "gold", "gold item (expected score known, not told)"
        PRACTICE = "practice", "practice pair (answer told after it)"
        PAIR = "pair", "pair judged"
        PAIR_GOLD = "pair_gold", "gold pair (expected side known, not told)"
        TRAINING = "training", "qualification training item (rated, expected score told after it)"

    class Side(models.TextChoices):
        LEFT = "left"
        RIGHT = "right"

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="items")
    position = models.PositiveIntegerField()
    # A rated item shows ``stimulus``; a pair item shows ``stimulus`` on the left and ``right_stimulus``
    # on the right (sides drawn when the session is planned, stored so a reload shows the same).
    stimulus = models.ForeignKey(Stimulus, on_delete=models.PROTECT, related_name="items")
    right_stimulus = models.ForeignKey(Stimulus, on_delete=models.PROTECT, related_name="right_items", null=True,
                                       blank=True)
    kind = models.CharField(max_length=12, choices=Kind.choices)
    expected_score = models.PositiveSmallIntegerField(null=True, blank=True)
    expected_side = models.CharField(max_length=5, choices=Side.choices, blank=True,
                                     help_text="practice and gold pairs: the side a careful rater picks")
    shown_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["session", "position"], name="unique_item_position"),
            # A pair shows two different stimuli; only a pair has an expected side.
            models.CheckConstraint(condition=Q(right_stimulus__isnull=True) | ~Q(right_stimulus=models.F("stimulus")),
                                   name="pair_of_two_stimuli"),
            models.CheckConstraint(condition=Q(expected_side="") | Q(right_stimulus__isnull=False),
                                   name="expected_side_of_a_pair"),
        ]
        ordering = ["session", "position"]

    @property
    def is_pair(self) -> bool:
        return self.right_stimulus_id is not None


class Rating(models.Model):
    """A score given to one session item: at most one per item, enforced by the database."""

    item = models.OneToOneField(SessionItem, on_delete=models.PROTECT, related_name="rating")
    rater = models.ForeignKey(Rater, on_delete=models.PROTECT, related_name="ratings")
    stimulus = models.ForeignKey(Stimulus, on_delete=models.PROTECT, related_name="ratings")
    score = models.PositiveSmallIntegerField()
    response_ms = models.PositiveIntegerField(null=True, blank=True, help_text="from display to answer")
    # A default (not auto_now_add) so imported ratings keep the time they were given.
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(score__gte=1) & Q(score__lte=5), name="score_1_to_5")]
        indexes = [models.Index(fields=["stimulus"]), models.Index(fields=["rater", "created_at"])]

    def __str__(self) -> str:
        return f"{self.rater.label} gave {self.score}"


class Judgment(models.Model):
    """A choice between the two sides of one pair item: at most one per item, by the database.

    The two stimuli and their sides are the item's (``stimulus`` left, ``right_stimulus`` right), so
    the choice is a side and the chosen stimulus follows; ``rater`` repeats the item's session rater
    for the analysis' queries and is held equal to it by triggers (migration 0008), as for ratings.
    """

    item = models.OneToOneField(SessionItem, on_delete=models.PROTECT, related_name="judgment")
    rater = models.ForeignKey(Rater, on_delete=models.PROTECT, related_name="judgments")
    side = models.CharField(max_length=5, choices=SessionItem.Side.choices)
    response_ms = models.PositiveIntegerField(null=True, blank=True, help_text="from display to answer")
    layout = models.CharField(max_length=6, blank=True, help_text="side (both shown) or toggle (one at a time)")
    toggles = models.PositiveIntegerField(default=0, help_text="switches between the versions in the toggle layout")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(side__in=["left", "right"]), name="judgment_side_left_or_right"),
            models.CheckConstraint(condition=Q(layout__in=["", "side", "toggle"]), name="judgment_layout_known"),
        ]
        indexes = [models.Index(fields=["rater", "created_at"])]

    def __str__(self) -> str:
        return f"{self.rater.label} chose {self.side}"

    @property
    def chosen_stimulus_id(self) -> int:
        return self.item.stimulus_id if self.side == SessionItem.Side.LEFT else self.item.right_stimulus_id
