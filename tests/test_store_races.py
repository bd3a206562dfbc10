"""What must happen once happens once, when processes race: each ``Store`` here is a process's
own (its own connection, or pool), all on one database, on both backends.

- quota admission: 20 concurrent requests admit exactly the limit;
- claims (event ids, trigger ids): of 20 concurrent claims of one key, exactly one wins;
- upload dedupe: runs bringing the same content at once upload it once and share its id;
- the retention sweep: of several processes sweeping at once, one deletes each file.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

from bot.clients import anthropic_client
from bot.files_api import FilesApi, digest_file
from bot.quotas import Limits
from bot.retention import Sweeper
from bot.settings import Settings
from bot.store import ConversationStore, Store, utc_iso
from tests.fakes.anthropic import FakeAnthropic

NOW = 1_764_115_200.0  # 2025-11-26 00:00 UTC
RACERS = 20


@contextlib.asynccontextmanager
async def processes(target: Path | str, count: int, *, now: float = NOW) -> AsyncIterator[list[Store]]:
    """``count`` stores on one database, as ``count`` bot processes would have."""
    async with contextlib.AsyncExitStack() as stack:
        first = await stack.enter_async_context(Store(target, clock=lambda: now))  # migrates, once
        rest = await asyncio.gather(
            *(stack.enter_async_context(Store(target, clock=lambda: now)) for _ in range(count - 1))
        )
        yield [first, *rest]


def fields(user: str, team: str = "T0TEAM") -> dict[str, str]:
    return {"user_id": user, "team_id": team, "channel_id": "C0DATA"}


# -- quota admission ----------------------------------------------------------------------------


async def test_twenty_processes_admitting_one_person_at_once_admit_exactly_the_hourly_limit(
    store_target: Path | str,
) -> None:
    limits = Limits(
        runs_per_hour=3, max_concurrent_per_user=100, daily_tokens_per_user=10**9, daily_tokens_per_workspace=10**9
    )
    async with processes(store_target, RACERS) as stores:
        results = await asyncio.gather(
            *(store.admit(limits=limits, exempt=False, source="mention", **fields("U0ALICE")) for store in stores)
        )
        runs = await stores[0].all_runs()
    assert sum(refusal is None for _, refusal in results) == 3
    assert Counter(run["status"] for run in runs) == {"queued": 3, "refused": 17}
    assert {refusal.limit for _, refusal in results if refusal} == {"ANALYST_RUNS_PER_HOUR"}


async def test_twenty_processes_admit_exactly_the_concurrency_limit_per_person(store_target: Path | str) -> None:
    limits = Limits(
        runs_per_hour=100, max_concurrent_per_user=2, daily_tokens_per_user=10**9, daily_tokens_per_workspace=10**9
    )
    people = ["U0ALICE", "U0BOB", "U0CAROL", "U0DAN"]
    async with processes(store_target, RACERS) as stores:
        results = await asyncio.gather(
            *(
                store.admit(limits=limits, exempt=False, source="mention", **fields(people[n % len(people)]))
                for n, store in enumerate(stores)
            )
        )
        runs = await stores[0].all_runs()
    assert sum(refusal is None for _, refusal in results) == 2 * len(people)
    queued = Counter(run["user_id"] for run in runs if run["status"] == "queued")
    assert queued == dict.fromkeys(people, 2)


async def test_the_workspaces_tokens_hold_when_its_people_race(store_target: Path | str) -> None:
    """A workspace 100 tokens under its daily limit, with one run of 100 tokens: each racing
    request sees the same ledger, and the count of admitted runs is exact."""
    limits = Limits(
        runs_per_hour=100, max_concurrent_per_user=100, daily_tokens_per_user=10**9, daily_tokens_per_workspace=1_000
    )
    async with processes(store_target, RACERS) as stores:
        spent = await stores[0].create_run(source="mention", status="succeeded", **fields("U0ZED"))
        await stores[0].update_run(spent, input_tokens=900)
        first = await asyncio.gather(
            *(
                store.admit(limits=limits, exempt=True, source="mention", **fields(f"U{n}"))
                for n, store in enumerate(stores)
            )
        )
        assert all(refusal is None for _, refusal in first)  # 900 < 1,000: everyone in
        await stores[0].update_run(first[0][0], output_tokens=100)  # now the workspace has used 1,000
        second = await asyncio.gather(
            *(
                store.admit(limits=limits, exempt=True, source="mention", **fields(f"U{n}"))
                for n, store in enumerate(stores)
            )
        )
    assert {refusal.limit if refusal else None for _, refusal in second} == {"ANALYST_DAILY_TOKENS_PER_WORKSPACE"}


# -- claims ---------------------------------------------------------------------------------------


async def test_of_twenty_processes_claiming_one_event_exactly_one_wins(store_target: Path | str) -> None:
    async with processes(store_target, RACERS) as stores:
        won = await asyncio.gather(*(store.claim("event:Ev0RACE") for store in stores))
        taken = await asyncio.gather(*(store.take_claim("upload:abc", stale_after=60) for store in stores))
    assert won.count(True) == 1
    assert taken.count(True) == 1


async def test_a_claim_is_given_up_or_taken_over_once_stale(store_target: Path | str) -> None:
    async with processes(store_target, 3) as (one, two, three):
        assert await one.take_claim("delete:file_1", stale_after=60)
        assert not await two.take_claim("delete:file_1", stale_after=60)
        await two.release_claim("delete:file_1")  # not two's to give up
        assert not await three.take_claim("delete:file_1", stale_after=60)
        await one.release_claim("delete:file_1")
        assert await two.take_claim("delete:file_1", stale_after=60)
        # two "crashes" holding it; a minute later the others may take it over, once.
        for store in (one, three):
            store.clock = lambda: NOW + 61
        taken = await asyncio.gather(
            one.take_claim("delete:file_1", stale_after=60), three.take_claim("delete:file_1", stale_after=60)
        )
        assert sorted(taken) == [False, True]


# -- upload dedupe ------------------------------------------------------------------------------


def settings_for(claude: FakeAnthropic, target: Path | str) -> Settings:
    return Settings.from_env(
        {"ANTHROPIC_API_KEY": claude.api_key, "ANTHROPIC_BASE_URL": claude.base_url, "ANALYST_DB": str(target)},
        slack=False,
    )


async def test_processes_bringing_the_same_file_at_once_upload_it_once(
    store_target: Path | str, claude: FakeAnthropic, tmp_path: Path, streaming_csv: bytes
) -> None:
    csv = tmp_path / "streaming.csv"
    csv.write_bytes(streaming_csv)
    sha256, size, _ = digest_file(csv)
    client = anthropic_client(settings_for(claude, store_target))
    try:
        async with processes(store_target, 5) as stores:
            apis = [FilesApi(client, store) for store in stores]
            for api in apis:
                api.claim_poll_s = 0.01
            ids = await asyncio.gather(
                *(
                    api.ensure_uploaded(csv, sha256=sha256, filename="streaming.csv", mime_type="text/csv", size=size)
                    for api in apis
                )
            )
            records = [row for row in await stores[0].files() if row["sha256"] == sha256]
    finally:
        await client.close()
    assert len(claude.uploads_of(streaming_csv)) == 1
    assert len(set(ids)) == 1 and [row["id"] for row in records] == [ids[0]]


async def test_runs_in_one_process_bringing_the_same_file_at_once_wait_without_polling(
    store_target: Path | str, claude: FakeAnthropic, tmp_path: Path, streaming_csv: bytes
) -> None:
    """Same-process racers queue behind the first (no database claim, no polling), then
    reuse its upload."""
    csv = tmp_path / "streaming.csv"
    csv.write_bytes(streaming_csv)
    sha256, size, _ = digest_file(csv)
    client = anthropic_client(settings_for(claude, store_target))
    try:
        async with processes(store_target, 1) as [store]:
            api = FilesApi(client, store)
            api.claim_poll_s = 0.01
            claims: list[str] = []
            take_claim = store.take_claim

            async def counted(key: str, *, stale_after: float) -> bool:
                claims.append(key)
                return await take_claim(key, stale_after=stale_after)

            store.take_claim = counted  # type: ignore[method-assign]
            ids = await asyncio.gather(
                *(
                    api.ensure_uploaded(csv, sha256=sha256, filename="streaming.csv", mime_type="text/csv", size=size)
                    for _ in range(10)
                )
            )
    finally:
        await client.close()
    assert len(claude.uploads_of(streaming_csv)) == 1
    assert len(set(ids)) == 1
    assert claims == [f"upload:{sha256}"]  # only the first run claimed it; the rest never polled


# -- the retention sweep ------------------------------------------------------------------------


async def test_processes_sweeping_at_once_delete_each_file_once(
    store_target: Path | str, claude: FakeAnthropic, tmp_path: Path
) -> None:
    settings = settings_for(claude, store_target)
    client = anthropic_client(settings)
    try:
        async with processes(store_target, 3) as stores:
            uploader = FilesApi(client, stores[0])
            for n in range(6):
                path = tmp_path / f"table_{n}.csv"
                path.write_text(f"n\n{n}\n")
                sha256, size, _ = digest_file(path)
                await uploader.ensure_uploaded(path, sha256=sha256, filename=path.name, mime_type="text/csv", size=size)
            for store in stores:  # a day later
                store.clock = lambda: NOW + 2 * 86400
            sweepers = [Sweeper(settings, store, ConversationStore(store), FilesApi(client, store)) for store in stores]
            reports = await asyncio.gather(*(sweeper.sweep_once() for sweeper in sweepers))
            rows = await stores[0].files()
            claims = await stores[0].database.fetch("SELECT * FROM claims")
    finally:
        await client.close()
    deletes = Counter(r.path for r in claude.requests if r.method == "DELETE")
    assert len(deletes) == 6 and set(deletes.values()) == {1}  # every file deleted at Anthropic exactly once
    assert sum(report.files_deleted for report in reports) == 6
    assert sum(report.files_already_gone + report.files_failed for report in reports) == 0
    assert all(row["deleted_at"] == utc_iso(NOW + 2 * 86400) for row in rows)
    assert claims == []  # every claim given up


async def test_a_file_deleted_by_another_process_meanwhile_is_left_alone(
    store_target: Path | str, claude: FakeAnthropic
) -> None:
    settings = settings_for(claude, store_target)
    client = anthropic_client(settings)
    try:
        async with processes(store_target, 1, now=NOW + 2 * 86400) as (store,):
            await store.record_file(
                file_id="file_gone", origin="generated", filename="a.png", mime_type="image/png", size_bytes=1
            )
            sweeper = Sweeper(settings, store, ConversationStore(store), FilesApi(client, store))
            [row] = await store.files_created_before(utc_iso(NOW + 3 * 86400))
            await store.mark_file_deleted("file_gone")  # by another process, after this one listed it
            assert await sweeper._delete_claimed(row["id"]) is None
    finally:
        await client.close()
    assert [r for r in claude.requests if r.method == "DELETE"] == []
