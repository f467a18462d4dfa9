"""Service connections of a project (Azure Resource Manager with workload identity federation): which app or
managed identity a pipeline may sign in as, which pipelines may, and the OIDC token a job gets for one."""
