"""The service with the token check switched off: every caller may do everything. Only for
measuring what authentication costs; never deploy it."""

from fastapi import Request

from user_service.auth.guard import SCOPES, Principal
from user_service.main import get_app


class _LetEveryoneIn:
    def __init__(self) -> None:
        self.everyone = Principal("bench", frozenset(SCOPES))

    async def authenticate(self, request: Request) -> Principal:
        return self.everyone


app = get_app()  # loads the modules, whose routes declare the scopes
app.state.auth = _LetEveryoneIn()
