from sensitiv.projections import *  # noqa: F401,F403  same names
