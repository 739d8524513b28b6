"""What persists: the artifact store, the session checkpointer and the image index."""
