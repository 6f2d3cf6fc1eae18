"""Built-in tasks. Importing this package registers every task in `xmodal.data.tasks.TASKS`.

One module per family: UCR/UEA time series and synthetic ECG, images, music, PDEs, logic and
genomics. `xmodal.data.tasks.task_names()` lists them; every one loads offline.
"""

from xmodal.data.catalog import (  # noqa: F401  (each module registers its tasks on import)
    ecg,
    genomics,
    images,
    logic,
    music,
    pde,
    timeseries,
)
