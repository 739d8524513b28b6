"""The bottom layer: errors, settings, locks, the build-once cache and fingerprints. Imports nothing else of the project."""
