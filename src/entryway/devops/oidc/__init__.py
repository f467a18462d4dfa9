"""The DevOps service as an OpenID Connect issuer for pipelines: discovery, keys and the tokens a job gets for a
service connection (Azure DevOps' `https://vstoken.dev.azure.com/{organizationId}`)."""
