"""The service with the token check switched off: every caller may do everything. Only for
measuring what authentication costs; never deploy it."""

from fastapi import Request

from user_service.auth.guard import SCOPES, Principal
from user_service.main import get_app

EVERYONE = Principal("bench", frozenset(SCOPES))


class _LetEveryoneIn:
    async def authenticate(self, request: Request) -> Principal:
        return EVERYONE


app = get_app()
app.state.auth = _LetEveryoneIn()
