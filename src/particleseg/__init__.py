"""particleseg: count and size nanoparticles in electron micrographs."""
__version__ = "0.1.0.dev0"
