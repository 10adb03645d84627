"""The package's version, in a module of its own: the scoring server reports it (and is copied into
images without the rest of the package), the image labels and the CLI show it."""
__version__ = "0.1.0"
