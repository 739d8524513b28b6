"""search_images: find photos in the user's own indexed library by what they show (text, an example
image, words to exclude) and by when, where and with what they were taken."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator, model_validator

from agent.core.errors import ToolInputError
from memory.artifacts import Artifact, guess_mime
from memory.photo_filters import PhotoFilters, parse_day
from memory.photo_metadata import fold
from tools.base import STEP_REF_PATTERN, Tool, ToolArgs, ToolResult

if TYPE_CHECKING:
    from memory.image_index import SearchHit, SearchOutcome
    from tools.context import RunContext

_DAY_FORMAT = r"^\d{4}(-\d{2}(-\d{2})?)?$"


class SearchImagesArgs(ToolArgs):
    query: str | None = Field(
        None,
        min_length=1,
        description="What the photos show, in plain English words, e.g. 'a dog on a beach'. "
        "Places, dates and cameras go in their own arguments, not here.",
    )
    image: str | None = Field(
        None,
        min_length=1,
        description="Find photos like this one: a path, or <step-N> for an image an earlier step produced",
    )
    without: list[str] = Field(
        default_factory=list,
        max_length=5,
        description="Things the photos should not show, e.g. ['people'] for 'the beach without people'",
    )
    date_from: str | None = Field(
        None, pattern=_DAY_FORMAT, description="Taken on or after this day, YYYY-MM-DD"
    )
    date_to: str | None = Field(
        None, pattern=_DAY_FORMAT, description="Taken on or before this day, YYYY-MM-DD"
    )
    place: str | None = Field(
        None, min_length=1, description="Where they were taken: a city, region or country, e.g. 'Lisbon'"
    )
    folder: str | None = Field(None, min_length=1, description="A folder name the photos are in")
    camera: str | None = Field(None, min_length=1, description="The camera or phone, e.g. 'iPhone', 'Canon'")
    orientation: Literal["landscape", "portrait", "square"] | None = None
    file_type: str | None = Field(None, min_length=1, description="A file type such as 'png' or 'jpg'")
    k: int = Field(5, ge=1, le=50, description="How many photos to return (1-50)")

    @field_validator("without")
    @classmethod
    def _no_blank_terms(cls, terms: list[str]) -> list[str]:
        cleaned = [t.strip() for t in terms]
        if any(not t for t in cleaned):
            raise ValueError("`without` terms must not be empty")
        return cleaned

    @model_validator(mode="after")
    def _something_to_find(self) -> SearchImagesArgs:
        visual = visual_words(self.query, [self.place, self.folder, self.camera])
        if visual is not None or not self.without:  # words to exclude need something to subtract from
            self.query = visual
        if self.query is None and self.image is None and self.filters().empty:
            raise ValueError(
                "give `query` (text), `image` (an example image) or a filter (date_from, date_to, "
                "place, folder, camera, orientation, file_type)"
            )
        if self.without and self.query is None and self.image is None:
            raise ValueError("`without` needs a `query` or an `image` to subtract from")
        return self

    def filters(self) -> PhotoFilters:
        try:
            return PhotoFilters(
                start=parse_day(self.date_from) if self.date_from else None,
                end=parse_day(self.date_to, end=True) if self.date_to else None,
                place=self.place,
                folder=self.folder,
                camera=self.camera,
                orientation=self.orientation,
                file_type=self.file_type,
            )
        except ToolInputError as exc:
            raise ValueError(str(exc)) from None


# Words that name no visual content: a query made only of these (and of the filters' own words) is
# a filter-only search. "photos from Lisbon" with place "Lisbon" looks for nothing in particular.
_NOT_VISUAL = frozenset(
    {"a", "an", "the", "my", "our", "me", "all", "some", "any", "of", "in", "at", "from", "on", "with"}
    | {"taken", "shot", "photo", "photos", "picture", "pictures", "pic", "pics", "image", "images"}
    | {"show", "find", "search", "look", "for", "that", "i", "took", "take", "by", "using", "camera"}
)


def visual_words(query: str | None, filter_values: list[str | None]) -> str | None:
    """The query without the words its filters already say. Small planners often repeat a place in
    the query ("food in Italy" with place "Italy"); CLIP would then look for what Italy looks like,
    and a query that was only the place would find no photo that looks like "Rome". Returns None
    when nothing visual is left: the search becomes a filter-only one."""
    if query is None:
        return None
    filter_words = {w for value in filter_values if value for w in fold(value).split()}
    words = query.split()
    kept = [w for w in words if fold(w).strip(".,;:!?") not in filter_words]
    if not any(fold(w).strip(".,;:!?") not in _NOT_VISUAL for w in kept):
        return None
    # Drop a preposition left dangling at the end ("food in" after "Italy" went).
    while kept and fold(kept[-1]) in {"in", "at", "from", "on", "of", "with", "by", "using"}:
        kept.pop()
    return " ".join(kept) if len(kept) < len(words) else query


class SearchImagesTool(Tool):
    name = "search_images"
    action = "search your photos"
    description = (
        "Search the user's OWN photo library (already on disk) by what the photos show and by when, "
        "where and with what camera they were taken. Use only to find existing photos; never for "
        "creating new images. query = visual words in English; place, date_from/date_to "
        "(YYYY-MM-DD, computed from today's date), folder and camera filter; without = things to "
        "exclude; image = find photos like this one; k = how many (default 5)."
    )
    args_model = SearchImagesArgs
    requires = ("chromadb", "transformers", "torch")
    models = ("clip",)
    artifact_inputs = ("image",)

    def run(self, args: ToolArgs, ctx: RunContext) -> ToolResult:
        assert isinstance(args, SearchImagesArgs)
        index = ctx.app.image_index
        filters = args.filters()
        source = None
        if args.image is not None:
            if re.match(STEP_REF_PATTERN, args.image.strip()):
                # The executor swaps "<step-N>" for that step's image; still here means it had none.
                raise ToolInputError(f"{args.image} produced no image to search with")
            # An LLM-chosen path goes through the shared guard; attachments are in trusted_paths.
            source = ctx.resolve_path(args.image)
        asked = describe_request(args.query, source.name if source else None, args.without, filters)
        ctx.progress(f"searching the photo library {asked}", None)
        outcome = index.search(text=args.query, image=source, without=args.without, filters=filters, k=args.k)
        return outcome_result(outcome, asked, args.query)


def describe_request(
    query: str | None, image_name: str | None, without: list[str], filters: PhotoFilters
) -> str:
    """The request in words: "for 'red circles' without 'people', from Paris, taken 2021-01-01 to ..."."""
    parts = []
    if query is not None:
        parts.append(f"for {query!r}")
    if image_name is not None:
        parts.append(f"like {image_name}")
    if without:
        parts.append("without " + ", ".join(repr(t) for t in without))
    if not filters.empty:
        parts.append(filters.describe())
    return " ".join(parts)


def hit_caption(hit: SearchHit) -> str:
    """When and where, for an answer: "June 14, 2019, Lisbon, Portugal"."""
    parts = []
    if hit.taken:
        parts.append(hit.taken_words + (" (file date)" if hit.taken_guess else ""))
    if hit.place:
        parts.append(hit.place)
    if hit.camera:
        parts.append(hit.camera)
    return ", ".join(parts)


def outcome_result(outcome: SearchOutcome, asked: str, query: str | None = None) -> ToolResult:
    hits = outcome.hits
    if not hits:
        if outcome.no_match:
            closest = "; ".join(f"{h.path} (score {h.score:.3f})" for h in outcome.closest)
            text = f"No photos look like {query!r}. Closest, not matching: {closest}."
        else:
            text = f"No photos found {asked}."
        return ToolResult(
            text=text,
            data={"results": [], "no_match": outcome.no_match, "closest": [_row(h) for h in outcome.closest]},
        )
    order = "best first" if outcome.visual else "newest first"
    lines = [f"Found {len(hits)} photo{'s' if len(hits) != 1 else ''} {asked} ({order}):"]
    for n, hit in enumerate(hits, 1):
        score = f"score {hit.score:.3f}" if outcome.visual else ""
        details = ", ".join(p for p in (hit_caption(hit), score) if p)
        lines.append(f"{n}. {hit.path}" + (f" ({details})" if details else ""))
    artifacts = [
        Artifact(path=hit.path, mime=guess_mime(hit.path), sha256=hit.hash, meta={"score": hit.score})
        for hit in hits
    ]
    return ToolResult(text="\n".join(lines), artifacts=artifacts, data={"results": [_row(h) for h in hits]})


def _row(hit: SearchHit) -> dict[str, object]:
    return {"path": hit.path, "score": hit.score, **hit.details()}
