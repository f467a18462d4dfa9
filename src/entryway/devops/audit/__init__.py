"""The DevOps audit log: every authentication decision and every change, who, what, when, from where and
with which kind of credential; never the credential itself."""
