"""The web page (`modalgraph serve`): a Gradio app over the same turns, sessions and library as the CLI.

Nothing here is imported by the CLI until `serve` runs: Gradio takes seconds to import.
"""
