"""coursekit: the tested pieces of the course "Deep learning for vision".

Importing coursekit is cheap: torch is imported only by the pieces that need it.
"""

from coursekit.runtime import Budget, budget, device, seed_everything, under_grading

__version__ = "0.1.0"

__all__ = ["Budget", "budget", "device", "seed_everything", "under_grading", "__version__"]
