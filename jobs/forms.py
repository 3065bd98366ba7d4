from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from clusters.models import Cluster
from images.models import Software
from projects.models import Project
from renderhub.cli import parse_id

from . import services
from .models import RenderJob
from .submission import MISSING_FILES, OUTSIDE_RANGE


def parse_param_lines(text: str) -> dict[str, str]:
    """``key=value`` per line (the CLI's ``--param k=v``) into a dict; blank lines skipped."""
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ValidationError(f"Line {number}: write parameters as name=value.")
        values[key.strip()] = value.strip()
    return values


class SubmitRenderForm(forms.Form):
    project = forms.ModelChoiceField(queryset=Project.objects.none())
    software = forms.ModelChoiceField(queryset=Software.objects.select_related("image"))
    cluster = forms.ModelChoiceField(queryset=Cluster.objects.all())
    scenes = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Scene file URLs, one per line (e.g. file:///…/scene.blend or oss://bucket/a.blend).",
    )
    frames = forms.CharField(help_text="e.g. 1-48, 1-10,20,30-40 or 1-100x5", max_length=500)
    nodes = forms.IntegerField(required=False, min_value=1, help_text="Spread frames over N nodes.")
    chunk_size = forms.IntegerField(
        required=False, min_value=1, help_text="Or: frames per chunk (a work queue)."
    )
    chunk_seconds = forms.IntegerField(
        required=False,
        min_value=1,
        label="Chunk seconds",
        help_text="Or: adaptive chunks of about this much measured render time, re-split as "
        "frames finish so the last ones end together. Empty (with no nodes or chunk size): "
        "the farm's default.",
    )
    max_nodes = forms.IntegerField(
        required=False,
        min_value=1,
        label="At most nodes at once",
        help_text="Leave room for other jobs: at most this many chunks run at once.",
    )
    parameters = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text="name=value per line"
    )
    priority = forms.IntegerField(initial=0, min_value=-100, max_value=100)
    test_frame_first = forms.BooleanField(
        required=False, help_text="Render the first frame alone; queue the rest if it succeeds."
    )
    name = forms.CharField(required=False, max_length=150)
    after = forms.CharField(
        required=False,
        max_length=500,
        label="Run after jobs",
        help_text="Job ids, e.g. 12, 14: this job starts when they have all finished.",
    )
    movie = forms.BooleanField(
        required=False,
        label="Make a preview movie",
        help_text="When the frames are done, encode them into an H.264 MP4 in the job's folder.",
    )
    force = forms.BooleanField(
        required=False,
        label="Render frames outside the scene's range",
        help_text="Blender renders them from the animation as it stands at those frames.",
    )
    allow_missing = forms.BooleanField(
        required=False,
        label="Render without the missing files",
        help_text="Blender paints a missing texture magenta and renders without the rest.",
    )

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        self.warnings: list[str] = []  # what the scene facts say, once submitted
        self.outside_range = False  # refused for frames outside the scene's range
        self.missing_files = False  # refused for files the scenes need that are not there
        self.fields["project"].queryset = Project.objects.visible_to(user)  # type: ignore[attr-defined]

    def clean_scenes(self) -> list[str]:
        return [line.strip() for line in self.cleaned_data["scenes"].splitlines() if line.strip()]

    def clean_parameters(self) -> dict[str, str]:
        return parse_param_lines(self.cleaned_data.get("parameters") or "")

    def clean_after(self) -> list[int]:
        ids = []
        for word in (self.cleaned_data.get("after") or "").replace(",", " ").split():
            pk = parse_id(word.removeprefix("#"))
            if pk is None:
                raise ValidationError(f"{word!r} is not a job id like 12 or #12.")
            ids.append(pk)
        return ids

    def submit(self) -> list[RenderJob]:
        data = self.cleaned_data
        request = services.RenderRequest(
            project=data["project"],
            software=data["software"],
            cluster=data["cluster"],
            scenes=data["scenes"],
            frames=data["frames"],
            nodes=data.get("nodes"),
            chunk_size=data.get("chunk_size"),
            parameters=data.get("parameters") or {},
            priority=data.get("priority") or 0,
            test_frame_first=data.get("test_frame_first", False),
            name=data.get("name", ""),
            force=data.get("force", False),
            allow_missing=data.get("allow_missing", False),
            after=data.get("after") or [],
            movie=data.get("movie", False),
            max_nodes=data.get("max_nodes"),
            chunk_seconds=data.get("chunk_seconds"),
        )
        try:
            jobs = services.submit_render(request, user=self.user)
        except services.SubmissionError as exc:
            for field, errors in exc.error_dict.items():
                for error in errors:
                    self.outside_range |= error.code == OUTSIDE_RANGE
                    self.missing_files |= error.code == MISSING_FILES
                    self.add_error(field if field in self.fields else None, error)
            return []
        self.warnings = jobs.warnings
        return jobs

    @property
    def offer_force(self) -> bool:
        """Show the "render anyway" box: after that refusal, or once it was ticked."""
        return self.outside_range or bool(self.data.get("force"))

    @property
    def offer_allow_missing(self) -> bool:
        """Show the "render without them" box: after that refusal, or once it was ticked."""
        return self.missing_files or bool(self.data.get("allow_missing"))


class SceneListField(forms.Field):
    """Scene URLs picked in the storage browser (one input per scene); duplicates dropped."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value: Any) -> list[str]:
        if not value:
            return []
        if isinstance(value, str):
            value = [value]
        return list(dict.fromkeys(str(v).strip() for v in value if str(v).strip()))

    def validate(self, value: Any) -> None:
        if self.required and not value:
            raise ValidationError("Choose at least one scene file.", code="required")


def parameter_field(definition: dict[str, Any]) -> forms.Field:
    """A typed form field for one of a Software's custom parameter definitions."""
    from images.choices import ParameterType

    kind = definition["type"]
    default = definition.get("default")
    options: dict[str, Any] = {
        "label": definition["name"].replace("_", " ").capitalize(),
        "help_text": definition.get("help", ""),
        "initial": default,
        # A default fills an empty value in coerce_values, so only default-less ones must be given.
        "required": bool(definition.get("required")) and default is None,
    }
    if kind == ParameterType.CHOICE:
        return forms.ChoiceField(choices=[(c, c) for c in definition["choices"]], **options)
    if kind == ParameterType.INTEGER:
        return forms.IntegerField(**options)
    if kind == ParameterType.FLOAT:
        return forms.FloatField(**options)
    if kind == ParameterType.BOOLEAN:
        return forms.BooleanField(**{**options, "required": False})
    return forms.CharField(max_length=500, **options)


def preselected_cluster(clusters: Any) -> int | None:
    """The cluster to offer first: the only active one, else an active one named ``local``
    (as ``submit_render`` on the command line picks it)."""
    from clusters.choices import ClusterState

    active = list(clusters.filter(state=ClusterState.ACTIVE).values_list("pk", "name")[:50])
    if len(active) == 1:
        return int(active[0][0])
    return next((int(pk) for pk, name in active if name == "local"), None)


class SubmitRenderPageForm(SubmitRenderForm):
    """The staff page's form: one project, scenes from the storage browser, typed parameters.

    Software and clusters are limited to the project's image; the custom parameters of the
    chosen software become ``param_<name>`` fields (the admin form keeps its text box).
    """

    scenes = SceneListField()  # type: ignore[assignment]  # a list, where the admin has text
    PARAM_PREFIX = "param_"

    def __init__(
        self,
        *args: Any,
        user: Any,
        project: Project,
        software: Software | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, user=user, **kwargs)
        from clusters.choices import ClusterState

        self.page_project = project
        self.fields["project"].widget = forms.HiddenInput()
        self.fields["project"].initial = project.pk
        software_qs = Software.objects.filter(image_id=project.image_id).select_related("image")
        self.fields["software"].queryset = software_qs  # type: ignore[attr-defined]
        clusters = Cluster.objects.filter(image_id=project.image_id).exclude(
            state=ClusterState.DELETED
        )
        self.fields["cluster"].queryset = clusters  # type: ignore[attr-defined]
        self.fields["cluster"].initial = preselected_cluster(clusters)
        del self.fields["parameters"]
        self.fields["name"].widget.attrs["placeholder"] = "Default: the scene's file name"
        self.chosen_software = self._chosen_software(software_qs, software)
        if self.chosen_software is not None:
            self.fields["software"].initial = self.chosen_software.pk
            for definition in self.chosen_software.parameters:
                field = parameter_field(definition)
                self.fields[self.PARAM_PREFIX + definition["name"]] = field

    def _chosen_software(self, choices: Any, fallback: Software | None) -> Software | None:
        """The software named in the posted data, else ``fallback``, else the first one."""
        pk = parse_id(self.data.get("software")) if self.is_bound else None
        if pk and (chosen := choices.filter(pk=pk).first()):
            return chosen
        if fallback is not None and fallback.image_id == self.page_project.image_id:
            return fallback
        return choices.first()

    @property
    def parameter_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.fields if name.startswith(self.PARAM_PREFIX)]

    def clean_scenes(self) -> list[str]:
        return self.cleaned_data["scenes"]  # already a list

    def clean_project(self) -> Project:
        project = self.cleaned_data["project"]
        if project.pk != self.page_project.pk:
            raise ValidationError("The project changed; choose it again.")
        return project

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        data["parameters"] = {
            name.removeprefix(self.PARAM_PREFIX): value
            for name, value in data.items()
            if name.startswith(self.PARAM_PREFIX) and value is not None and value != ""
        }
        return data
