"""losscast's numerical core: schedules, the two areas, the laws, the fitter and the planner.

Pure functions over arrays (JAX, float64, CPU or GPU). Nothing here imports web, storage or HTTP
code: the service in ``app/`` calls into this package, never the other way round.
"""

import jax

# The one place float64 is switched on: loss differences of 1e-4 on areas of 1e1 need it.
jax.config.update("jax_enable_x64", True)
