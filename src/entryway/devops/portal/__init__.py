"""The DevOps origin's web pages: sign-in through the identity platform as a confidential OIDC client, web
sessions, and the personal access token pages (the user's tokens; the administrators' policies and report)."""
