from sensitiv.prox import *  # noqa: F401,F403  same names
from sensitiv.prox import prox_elastic_net_jaxopt as prox_elastic_net  # different convention: jaxopt's is kept under this name
