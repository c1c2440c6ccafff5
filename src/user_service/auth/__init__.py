"""Who may call the API: bearer tokens granting scopes (`guard`), our own API tokens
(`tokens`), and JWTs from an OpenID Connect identity provider (`oidc`)."""
