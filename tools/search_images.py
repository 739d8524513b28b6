"""search_images: find photos in the user's own indexed library, by text or by an example image."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pydantic import Field, model_validator

from agent.core.errors import ToolInputError
from memory.artifacts import Artifact, guess_mime
from tools.base import STEP_REF_PATTERN, Tool, ToolArgs, ToolResult

if TYPE_CHECKING:
    from tools.context import RunContext


class SearchImagesArgs(ToolArgs):
    query: str | None = Field(
        None, min_length=1, description="What the photos show, in plain words, e.g. 'a dog on a beach'"
    )
    image: str | None = Field(
        None,
        min_length=1,
        description="Find photos like this one: a path, or <step-N> for an image an earlier step produced",
    )
    k: int = Field(5, ge=1, le=50, description="How many photos to return (1-50)")

    @model_validator(mode="after")
    def _exactly_one(self) -> SearchImagesArgs:
        if (self.query is None) == (self.image is None):
            raise ValueError("give exactly one of `query` (text) or `image` (an example image)")
        return self


class SearchImagesTool(Tool):
    name = "search_images"
    description = (
        "Search the user's OWN photo library (already on disk) by text or by example image. "
        "Use only to find existing photos; never for creating new images. "
        "Give query='words' or image='path or <step-N>', and optionally k (how many, default 5)."
    )
    args_model = SearchImagesArgs
    requires = ("chromadb", "transformers", "torch")
    models = ("clip",)
    artifact_inputs = ("image",)

    def run(self, args: ToolArgs, ctx: RunContext) -> ToolResult:
        assert isinstance(args, SearchImagesArgs)
        index = ctx.app.image_index
        if args.query is not None:
            ctx.progress(f"searching the photo library for {args.query!r}", None)
            hits = index.search_text(args.query, args.k)
            asked = f"for {args.query!r}"
        else:
            assert args.image is not None
            if re.match(STEP_REF_PATTERN, args.image.strip()):
                # The executor swaps "<step-N>" for that step's image; still here means it had none.
                raise ToolInputError(f"{args.image} produced no image to search with")
            # An LLM-chosen path goes through the shared guard; attachments are in trusted_paths.
            source = ctx.resolve_path(args.image)
            ctx.progress(f"searching the photo library for images like {source.name}", None)
            hits = index.search_image(source, args.k)
            asked = f"like {source}"
        if not hits:
            return ToolResult(text=f"No photos found {asked}.", data={"results": []})
        lines = [f"Found {len(hits)} photo{'s' if len(hits) != 1 else ''} {asked} (best first):"]
        lines += [f"{n}. {hit.path} (score {hit.score:.3f})" for n, hit in enumerate(hits, 1)]
        artifacts = [
            Artifact(path=hit.path, mime=guess_mime(hit.path), sha256=hit.hash, meta={"score": hit.score})
            for hit in hits
        ]
        results = [{"path": hit.path, "score": hit.score} for hit in hits]
        return ToolResult(text="\n".join(lines), artifacts=artifacts, data={"results": results})
