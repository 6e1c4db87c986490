"""mitiga's shared core: settings, events, the adapter interfaces, model bundles and the model zoo.

Services import only from here, never from one another.
"""

__version__ = "0.1.0"
