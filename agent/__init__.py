"""modalgraph: a local multimodal assistant. Importing this package must stay cheap."""

__version__ = "0.1.0"
