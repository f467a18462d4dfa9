"""Git repositories of the DevOps service: bare repositories on disk and the smart HTTP protocol over them."""
