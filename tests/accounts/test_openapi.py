"""The accounts' part of the OpenAPI document: what Swagger UI's Authorize button uses."""

from fastapi.testclient import TestClient


def test_self_service_routes_need_a_signed_in_person_and_sign_in_is_a_password_flow(
    anonymous: TestClient,
) -> None:
    schema = anonymous.get("/openapi.json").json()
    scheme = schema["components"]["securitySchemes"]["account"]
    assert scheme["type"] == "oauth2"
    assert scheme["flows"]["password"]["tokenUrl"] == "/auth/login"
    secured = {
        f"{method.upper()} {path}"
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if operation.get("security") == [{"account": []}]
    }
    assert secured == {
        "GET /users/me",
        "PATCH /users/me",
        "DELETE /users/me",
        "POST /users/me/password",
        "POST /users/me/email",
        "POST /auth/logout",
        "GET /auth/sessions",
        "DELETE /auth/sessions/{session_id}",
        "GET /users/me/mfa",
        "POST /users/me/mfa/totp",
        "POST /users/me/mfa/totp/confirm",
        "DELETE /users/me/mfa/totp",
        "POST /users/me/mfa/recovery-codes",
        "POST /users/me/mfa/passkey-options",
        "POST /users/me/mfa/passkeys",
        "DELETE /users/me/mfa/passkeys/{passkey_id}",
    }
    public = (
        "/auth/register",
        "/auth/verify",
        "/auth/login",
        "/auth/refresh",
        "/auth/mfa",
        "/auth/passkey",
        "/.well-known/jwks.json",
    )
    for path in public:
        for operation in schema["paths"][path].values():
            assert "security" not in operation, path
    assert schema["paths"]["/audit"]["get"]["security"] == [{"bearer": ["audit:read"]}]
    login = schema["paths"]["/auth/login"]["post"]["requestBody"]["content"]
    assert "application/x-www-form-urlencoded" in login
