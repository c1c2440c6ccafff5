"""Many clients at once, against the multi-process server: no lost, mixed or doubled work."""

import asyncio
from collections import Counter

from tests.support import Server


def test_hundreds_of_parallel_creates_get_unique_ids_and_keep_their_names(
    server: Server,
) -> None:
    async def scenario() -> tuple[dict[int, str], dict[int, str]]:
        async with server.async_client(timeout=60) as client:
            names = [f"parallel {n}" for n in range(300)]
            created = await asyncio.gather(
                *(client.post("/users", json={"name": name}) for name in names)
            )
            assert [response.status_code for response in created] == [201] * len(names)
            by_id = {
                response.json()["id"]: name for response, name in zip(created, names, strict=True)
            }
            read = await asyncio.gather(*(client.get(f"/users/{user_id}") for user_id in by_id))
            return by_id, {response.json()["id"]: response.json()["nickname"] for response in read}

    by_id, stored = asyncio.run(scenario())
    assert len(by_id) == 300  # every id distinct
    assert stored == by_id  # each id holds the name it was created with


def test_parallel_renames_of_one_user_leave_one_of_the_names(server: Server) -> None:
    async def scenario() -> tuple[Counter[int], str, list[str]]:
        async with server.async_client(timeout=60) as client:
            user = (await client.post("/users", json={"name": "original"})).json()
            names = [f"writer {n} " + "x" * n for n in range(100)]
            renamed = await asyncio.gather(
                *(client.patch(f"/users/{user['id']}", json={"name": name}) for name in names)
            )
            final = (await client.get(f"/users/{user['id']}")).json()["nickname"]
            return Counter(response.status_code for response in renamed), final, names

    statuses, final, names = asyncio.run(scenario())
    assert statuses == Counter({200: 100})
    assert final in names  # one writer's whole name: never a mix, never the original


def test_parallel_deletes_and_reads_of_many_users(server: Server) -> None:
    async def scenario() -> tuple[Counter[int], Counter[int]]:
        async with server.async_client(timeout=60) as client:
            created = await asyncio.gather(
                *(client.post("/users", json={"name": f"doomed {n}"}) for n in range(50))
            )
            ids = [response.json()["id"] for response in created]
            deletes = await asyncio.gather(
                *(client.delete(f"/users/{user_id}") for user_id in ids for _ in range(4))
            )
            reads = await asyncio.gather(*(client.get(f"/users/{user_id}") for user_id in ids))
            return (
                Counter(response.status_code for response in deletes),
                Counter(response.status_code for response in reads),
            )

    deletes, reads = asyncio.run(scenario())
    assert deletes == Counter({200: 50, 404: 150})  # exactly one 200 per user
    assert reads == Counter({404: 50})
