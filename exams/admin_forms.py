"""The exam's admin form: one field per check and threshold instead of the raw
JSON of ``Exam.checks``, and a proctors list that offers only proctors. And
the candidate's, whose reference photo upload follows the roster's rules.

The fields mirror ``detection.core.CheckConfig``; the form builds a
CheckConfig from them (which refuses bad values too) and stores its
``to_dict()`` back into the JSON field.
"""

from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model
from django.db import models
from django.db.models import Q

from detection.core import ALL_CHECKS, PROHIBITED_LABELS, CheckConfig
from exams import services
from exams.access import PROCTOR_GROUP
from exams.models import Candidate, Exam
from exams.services.roster import ROSTER_PHOTO_MAX_BYTES

CHECK_LABELS = {
    "faces": "Faces: no face, or more than one face, in the picture",
    "identity": "Identity: the face does not match the candidate's reference photo",
    "head_pose": "Head pose: the candidate keeps looking away from the screen",
    "objects": "Objects: a phone, book, laptop or another person is seen",
    "camera": "Camera: the picture is covered, black or frozen",
}
# COCO labels the object detector knows that matter in an exam room.
OBJECT_LABELS = ("cell phone", "book", "laptop", "person", "remote", "keyboard", "mouse", "tv")

# (field name, label, help text, minimum, maximum)
THRESHOLDS = (
    (
        "identity_threshold",
        "Identity: largest face distance accepted",
        "How different a face may be from the reference photo and still count as the same person "
        "(face encoding distance). Lower is stricter. 0.5 is calibrated on the evaluation set "
        "(docs/detection.md); face_recognition's own default of 0.6 lets more strangers through.",
        0.3,
        0.7,
    ),
    (
        "yaw_threshold",
        "Head pose: turned sideways, degrees",
        "Turning the head further than this to the left or right counts as looking away.",
        10,
        90,
    ),
    (
        "pitch_threshold",
        "Head pose: tilted up or down, degrees",
        "Tilting the head further than this up or down counts as looking away.",
        10,
        90,
    ),
    (
        "looking_away_seconds",
        "Head pose: seconds before it is flagged",
        "How long the head must stay turned before an event is raised; a glance is not flagged.",
        1,
        60,
    ),
    (
        "object_min_score",
        "Objects: minimum detector confidence",
        "Objects the detector is less sure of than this (0 to 1) are ignored. Higher means fewer "
        "false alarms and more missed objects.",
        0.2,
        0.95,
    ),
)


def proctor_choices(exam: Exam | None):
    """Active users in the Proctor group (superusers proctor everything), and
    whoever the exam already names, so that the form never drops them unseen."""
    users = get_user_model().objects.filter(is_active=True)
    allowed = Q(groups__name=PROCTOR_GROUP) | Q(is_superuser=True)
    if exam is not None and exam.pk:
        allowed |= Q(pk__in=exam.proctors.values("pk"))
    return get_user_model().objects.filter(pk__in=users.filter(allowed).values("pk")).order_by("username")


def _threshold(name: str) -> forms.FloatField:
    label, help_text, low, high = next(t[1:] for t in THRESHOLDS if t[0] == name)
    return forms.FloatField(
        label=label,
        help_text=f"{help_text} Between {low:g} and {high:g}.",
        min_value=low,
        max_value=high,
        widget=forms.NumberInput(attrs={"step": "any"}),  # stored values need not sit on a step
    )


def _formfield(field, **kwargs):
    # An LMS link typed without a scheme is https, as ExamAdmin's formfield_overrides say.
    if isinstance(field, models.URLField):
        kwargs.setdefault("assume_scheme", "https")
    return field.formfield(**kwargs)


class ExamForm(forms.ModelForm):
    check_enabled = forms.MultipleChoiceField(
        label="Checks that run",
        choices=[(c, CHECK_LABELS.get(c, c)) for c in ALL_CHECKS],
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="Each check raises events for a human to review; none decides anything on its own.",
    )
    check_prohibited_labels = forms.MultipleChoiceField(
        label="Objects: what counts as prohibited",
        choices=[(label, label) for label in OBJECT_LABELS],
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="Used when the objects check runs. 'person' means a second person in the picture.",
    )

    # Declared on the class, not in __init__, so that the admin lays them out.
    check_identity_threshold = _threshold("identity_threshold")
    check_yaw_threshold = _threshold("yaw_threshold")
    check_pitch_threshold = _threshold("pitch_threshold")
    check_looking_away_seconds = _threshold("looking_away_seconds")
    check_object_min_score = _threshold("object_min_score")

    class Meta:
        model = Exam
        exclude = ("checks",)
        formfield_callback = _formfield

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        try:
            config = CheckConfig.from_dict(self.instance.checks)
        except (TypeError, ValueError):
            config = CheckConfig()  # stored JSON that no longer parses: start from the defaults
        labels = self.fields["check_prohibited_labels"]
        labels.choices = [(x, x) for x in dict.fromkeys((*OBJECT_LABELS, *config.prohibited_labels))]
        self.initial.setdefault("check_enabled", list(config.enabled))
        self.initial.setdefault("check_prohibited_labels", list(config.prohibited_labels))
        for name, *_ in THRESHOLDS:
            self.initial.setdefault(f"check_{name}", getattr(config, name))
        if "proctors" in self.fields:
            self.fields["proctors"].queryset = proctor_choices(self.instance)
            self.fields["proctors"].help_text = f"Only users in the {PROCTOR_GROUP} group can be chosen."

    def clean_proctors(self):
        proctors = self.cleaned_data["proctors"]
        allowed = set(
            get_user_model()
            .objects.filter(Q(groups__name=PROCTOR_GROUP) | Q(is_superuser=True), is_active=True)
            .values_list("pk", flat=True)
        )
        refused = [u.get_username() for u in proctors if u.pk not in allowed]
        if refused:
            raise forms.ValidationError(
                f"Not in the {PROCTOR_GROUP} group (or inactive): {', '.join(refused)}. "
                "Add them to the group first, or remove them here."
            )
        return proctors

    def clean(self):
        cleaned = super().clean()
        if any(f"check_{name}" in self.errors for name, *_ in THRESHOLDS):
            return cleaned
        if "objects" in cleaned.get("check_enabled", []) and not cleaned.get("check_prohibited_labels"):
            self.add_error("check_prohibited_labels", "The objects check is on: choose at least one object.")
            return cleaned
        try:
            config = CheckConfig(
                enabled=tuple(c for c in ALL_CHECKS if c in cleaned.get("check_enabled", [])),
                prohibited_labels=tuple(cleaned.get("check_prohibited_labels") or PROHIBITED_LABELS),
                **{name: cleaned[f"check_{name}"] for name, *_ in THRESHOLDS},
            )
            config = CheckConfig.from_dict(config.to_dict())  # the same checks the pipeline applies
        except (TypeError, ValueError) as exc:
            raise forms.ValidationError(f"These checks cannot be used: {exc}") from None
        # Set before the model's own validation (Exam.clean) runs in _post_clean.
        self.instance.checks = config.to_dict()
        return cleaned


def _too_large() -> forms.ValidationError:
    return forms.ValidationError(
        f"The photo is larger than {ROSTER_PHOTO_MAX_BYTES // (1024 * 1024)} MB, the roster's limit. "
        "Upload a smaller picture of the candidate's face."
    )


class CandidateForm(forms.ModelForm):
    """A reference photo uploaded here follows the roster import's rules: at
    most ROSTER_PHOTO_MAX_BYTES (the upload's size is checked before it is read,
    and at most one byte more than the limit is ever read), and exactly one
    face, encoded at once; otherwise the form says why and saves nothing."""

    class Meta:
        model = Candidate
        exclude = ("reference_encodings",)

    def clean_reference_photo(self):
        photo = self.cleaned_data.get("reference_photo")
        self.new_encodings = None
        if photo and "reference_photo" in self.changed_data:
            from detection.core import DetectionError

            if photo.size is not None and photo.size > ROSTER_PHOTO_MAX_BYTES:
                raise _too_large()
            try:
                data = photo.read(ROSTER_PHOTO_MAX_BYTES + 1)
                if len(data) > ROSTER_PHOTO_MAX_BYTES:
                    raise _too_large()
                self.new_encodings = services.reference_encodings(data)
            except DetectionError as exc:
                raise forms.ValidationError(
                    f"{exc}. Upload a photo that shows the candidate's face alone."
                ) from None
            finally:
                photo.seek(0)
        return photo
