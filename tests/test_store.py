"""The store's named operations, run against both backends (``store_target``: SQLite and PostgreSQL).

Business logic is written once above :mod:`bot.db`; these tests hold both engines to it: claims,
files, posts, conversations, shares, feedback, the usage report's query, retention's pruning and
the health ping.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
from pathlib import Path

import pytest

from bot.db import describe_target, to_numbered
from bot.feedback import FeedbackStore
from bot.health import database_ok
from bot.store import ConversationStore, Store, ThreadFile, ledger_state, usage_totals, utc_iso
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.slack import FakeSlack
from tests.harness import Harness

NOW = 1_764_115_200.0  # 2025-11-26 00:00 UTC


async def test_an_event_key_is_claimed_once(store_target: Path | str) -> None:
    async with Store(store_target, clock=lambda: NOW) as store:
        assert await store.claim("event:Ev1") is True
        assert await store.claim("event:Ev1") is False
        assert await store.claim("event:Ev2") is True
        # Several keys in one statement: won only if none was seen; all are seen afterwards.
        assert await store.claim("event:Ev3", "message:C1:1.0") is True
        assert await store.claim("event:Ev4", "message:C1:1.0") is False  # the same message, another event
        assert await store.claim("event:Ev4") is False
        assert await store.claim("event:Ev5", "event:Ev5") is True  # a key given twice counts once


async def test_uploads_are_found_by_content_until_deleted(store_target: Path | str) -> None:
    async with Store(store_target, clock=lambda: NOW) as store:
        assert await store.find_upload("abc") is None
        await store.record_file(
            file_id="file_1", origin="upload", filename="s.csv", mime_type="text/csv", size_bytes=10, sha256="abc",
            team_id="T0TEAM", user_id="U0ALICE",
        )  # fmt: skip
        store.clock = lambda: NOW + 1
        run_id = await store.create_run(source="mention", user_id="U0ALICE")
        await store.record_file(
            file_id="file_2", origin="generated", filename="chart.png", mime_type="image/png", size_bytes=5,
            run_id=run_id,
        )  # fmt: skip
        found = await store.find_upload("abc")
        assert found is not None and (found.id, found.filename, found.size_bytes) == ("file_1", "s.csv", 10)
        assert [f["id"] for f in await store.live_files_of_user("U0ALICE")] == ["file_1", "file_2"]
        assert [f["id"] for f in await store.files_created_before(utc_iso(NOW + 0.5))] == ["file_1"]

        await store.mark_file_deleted("file_1")
        assert await store.find_upload("abc") is None
        assert [f["id"] for f in await store.live_files_of_user("U0ALICE")] == ["file_2"]
        rows = {row["id"]: row for row in await store.files()}
        assert rows["file_1"]["deleted_at"] == utc_iso(NOW + 1) and rows["file_2"]["deleted_at"] is None

        # Recording the same id again (uploaded anew) makes it live again.
        await store.record_file(
            file_id="file_1", origin="upload", filename="s.csv", mime_type="text/csv", size_bytes=10, sha256="abc"
        )
        assert (found := await store.find_upload("abc")) is not None and found.id == "file_1"


async def test_runs_update_and_read_back(store_target: Path | str) -> None:
    async with Store(store_target, clock=lambda: NOW) as store:
        run_id = await store.create_run(source="mention", user_id="U0ALICE", team_id="T0TEAM", question="why?")
        await store.update_run(run_id, status="running", container_id="container_1")
        await store.update_run(run_id, input_tokens=10, output_tokens=5, cache_read_tokens=2, cache_write_tokens=1)
        store.clock = lambda: NOW + 30
        await store.update_run(run_id, status="succeeded")
        run = await store.get_run(run_id)
        assert (run["status"], run["container_id"], run["question"]) == ("succeeded", "container_1", "why?")
        assert (run["input_tokens"], run["started_at"], run["finished_at"]) == (10, utc_iso(NOW), utc_iso(NOW + 30))
        assert await store.find_run(run_id + 100) is None
        with pytest.raises(LookupError):
            await store.get_run(run_id + 100)
        for _ in range(3):
            await store.create_run(source="dm", user_id="U0ALICE")
        latest = await store.latest_runs_of_user("U0ALICE", 2)
        assert [r["id"] for r in latest] == [run_id + 3, run_id + 2]


async def test_quota_totals_summed_in_the_database_match_the_runs_they_sum(store_target: Path | str) -> None:
    """Admission reads sums (one statement); the refusal's explanation reads the runs. Both count
    the same runs the same way: admitted ones only, in the rolling hour and day, every token kind,
    missing counts as 0, an expired lease holding no slot."""
    shuffle = random.Random(7)
    async with Store(store_target, clock=lambda: NOW) as store:
        for _ in range(120):
            started = NOW - shuffle.uniform(0, 30 * 3600)
            store.clock = lambda started=started: started
            tokens = {
                column: shuffle.choice([None, 0, shuffle.randint(1, 5_000)])
                for column in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
            }
            run_id = await store.create_run(
                source="mention",
                status=shuffle.choice(["queued", "running", "succeeded", "failed", "refused", "cancelled"]),
                user_id=shuffle.choice(["U0ALICE", "U0BOB"]),
                team_id=shuffle.choice(["T0TEAM", "T0OTHER"]),
                **tokens,
            )
            if shuffle.random() < 0.5:  # owned by a process, whose lease may have expired
                await store.database.execute(
                    "UPDATE runs SET owner = ?, lease_until = ? WHERE id = ?",
                    ["host:1:a", utc_iso(NOW + shuffle.choice([-5, 5])), run_id],
                )
        for user, team in (("U0ALICE", "T0TEAM"), ("U0BOB", "T0OTHER"), ("U0NOBODY", "T0NONE")):
            state = await ledger_state(store.database, user, team, NOW)
            assert await usage_totals(store.database, user, team, NOW) == state.totals
        busy = await usage_totals(store.database, "U0ALICE", "T0TEAM", NOW)
        assert busy.user_tokens > 0 and busy.runs_last_hour > 0 and busy.active > 0


async def test_the_postgresql_pool_opens_at_most_its_size(postgres_url: str) -> None:
    """ANALYST_DB_POOL_SIZE bounds the connections: 6 statements at once on a pool of 2 share them."""
    async with Store(postgres_url, pool_size=2) as store:
        pids = await asyncio.gather(
            *(store.database.fetchone("SELECT pg_backend_pid() AS pid, pg_sleep(0.05)") for _ in range(6))
        )
        assert len({row["pid"] for row in pids if row}) == 2


async def test_posts_map_to_their_run_and_are_forgotten(store_target: Path | str) -> None:
    async with Store(store_target, clock=lambda: NOW) as store:
        run_id = await store.create_run(source="mention")
        await store.record_post(channel_id="C0DATA", ref="1.0", kind="message", run_id=run_id)
        await store.record_post(channel_id="C0DATA", ref="F1", kind="file", run_id=run_id)
        await store.record_post(channel_id="C0DATA", ref="1.0", kind="message", run_id=run_id)  # again: one row
        assert await store.run_of_post("C0DATA", "1.0") == run_id
        assert await store.run_of_post("C0DATA", "2.0") is None
        assert {p["ref"] for p in await store.posts_of_run(run_id)} == {"1.0", "F1"}
        await store.forget_posts(run_id)
        assert await store.posts_of_run(run_id) == []


async def test_prune_forgets_old_bookkeeping_only(store_target: Path | str) -> None:
    async with Store(store_target, clock=lambda: NOW) as store:
        conversations = ConversationStore(store)
        run_id = await store.create_run(source="mention")
        await store.claim("event:old")
        await conversations.record_share(team_id="T", channel_id="C", user_id="U", slack_file_id="F_OLD")
        await store.record_post(channel_id="C", ref="1.0", kind="message", run_id=run_id)
        store.clock = lambda: NOW + 100
        await store.claim("event:new")
        await conversations.record_share(team_id="T", channel_id="C", user_id="U", slack_file_id="F_NEW")
        await store.prune(events_before=utc_iso(NOW + 50), shares_before=utc_iso(NOW + 50), posts_before=utc_iso(NOW))
        assert await store.claim("event:old") is True  # forgotten, so claimable again
        assert await store.claim("event:new") is False
        assert await conversations.recent_shares(channel_id="C", user_id="U", since=utc_iso(0)) == ["F_NEW"]
        assert await store.run_of_post("C", "1.0") == run_id  # posted at NOW, not before it


async def test_a_conversation_keeps_its_files_turns_and_container(store_target: Path | str) -> None:
    async with Store(store_target, clock=lambda: NOW) as store:
        conversations = ConversationStore(store)
        assert await conversations.get("C0DATA:1.0") is None
        for user in ("U0ALICE", "U0BOB"):  # the first asker owns it
            await conversations.ensure(
                "C0DATA:1.0", team_id="T", channel_id="C0DATA", thread_ts="1.0", user_id=user, source="mention"
            )
        await conversations.add_file("C0DATA:1.0", ThreadFile("abc", "file_1", "F1", "s.csv", "csv", 10))
        store.clock = lambda: NOW + 1
        await conversations.add_file("C0DATA:1.0", ThreadFile("def", "file_2", None, "t.xlsx", "xlsx", 20))
        store.clock = lambda: NOW + 2
        await conversations.add_file("C0DATA:1.0", ThreadFile("abc", "file_3", "F1", "s.csv", "csv", 10))  # re-uploaded
        run_id = await store.create_run(source="mention")
        for n in (1, 2):
            await conversations.record_exchange(
                "C0DATA:1.0",
                run_id=run_id,
                model="claude-sonnet-5-5",
                user_content=[{"type": "text", "text": f"question {n}"}],
                assistant_content=[{"type": "text", "text": f"answer {n}"}],
                container_id=f"container_{n}",
                container_expires_at="2025-11-26T01:00:00Z",
            )
        conversation = await conversations.get("C0DATA:1.0")
        assert conversation is not None and conversation.user_id == "U0ALICE"
        assert conversation.container_id == "container_2"
        assert [f.file_id for f in conversation.files] == ["file_2", "file_3"]  # by when added
        assert [t["content"][0]["text"] for t in conversation.turns] == [
            "question 1",
            "answer 1",
            "question 2",
            "answer 2",
        ]
        assert await conversations.file_names(["C0DATA:1.0", "C0DATA:9.0"]) == {
            "C0DATA:1.0": ["t.xlsx", "s.csv"],
            "C0DATA:9.0": [],
        }
        assert await conversations.file_names([]) == {}
        await conversations.forget_container("C0DATA:1.0")
        conversation = await conversations.get("C0DATA:1.0")
        assert conversation is not None and conversation.container_id is None and len(conversation.turns) == 4


async def test_idle_and_forgotten_conversations_are_deleted_with_their_turns(store_target: Path | str) -> None:
    async with Store(store_target, clock=lambda: NOW) as store:
        conversations = ConversationStore(store)
        for key, user in (("C:1.0", "U0ALICE"), ("C:2.0", "U0BOB"), ("C:3.0", "U0ALICE")):
            await conversations.ensure(key, team_id="T", channel_id="C", thread_ts=key[2:], user_id=user, source="dm")
            await conversations.add_file(key, ThreadFile("abc", "file_1", None, "s.csv", "csv", 10))
        store.clock = lambda: NOW + 100
        await conversations.record_exchange(
            "C:3.0",
            run_id=1,
            model="m",
            user_content=[],
            assistant_content=[],
            container_id=None,
            container_expires_at=None,
        )
        assert await conversations.delete_idle_since(utc_iso(NOW + 50)) == 2
        assert await conversations.get("C:1.0") is None and await conversations.get("C:2.0") is None
        assert await conversations.file_names(["C:1.0"]) == {"C:1.0": []}
        assert await conversations.delete_for_user("U0ALICE") == 1
        assert await conversations.get("C:3.0") is None


async def test_the_latest_batch_of_shares(store_target: Path | str) -> None:
    async with Store(store_target, clock=lambda: NOW) as store:
        conversations = ConversationStore(store)
        await conversations.record_share(team_id="T", channel_id="C", user_id="U", slack_file_id="F_OLD")
        store.clock = lambda: NOW + 1000
        await conversations.record_share(team_id="T", channel_id="C", user_id="U", slack_file_id="F_A")
        store.clock = lambda: NOW + 1030
        await conversations.record_share(team_id="T", channel_id="C", user_id="U", slack_file_id="F_B")
        await conversations.record_share(team_id="T", channel_id="C", user_id="U2", slack_file_id="F_OTHER")
        shares = await conversations.recent_shares(channel_id="C", user_id="U", since=utc_iso(NOW))
        assert shares == ["F_B", "F_A"]
        store.clock = lambda: NOW + 2000
        await conversations.record_share(team_id="T", channel_id="C", user_id="U", slack_file_id="F_OLD")  # again
        assert await conversations.recent_shares(channel_id="C", user_id="U", since=utc_iso(NOW)) == ["F_OLD"]


async def test_feedback_last_write_wins_and_the_usage_query_counts_it(store_target: Path | str) -> None:
    async with Store(store_target, clock=lambda: NOW) as store:
        feedback = FeedbackStore(store)
        rated = await store.create_run(source="mention", user_id="U0ALICE", team_id="T0TEAM")
        unrated = await store.create_run(source="mention", user_id="U0ALICE", team_id="T0TEAM")
        await feedback.rate(run_id=rated, user_id="U0BOB", team_id="T0TEAM", rating="bad")
        await feedback.comment(run_id=rated, user_id="U0BOB", team_id="T0TEAM", comment="wrong column")
        await feedback.rate(run_id=rated, user_id="U0BOB", team_id="T0TEAM", rating="good")
        await feedback.rate(run_id=rated, user_id="U0CAROL", team_id="T0TEAM", rating="bad")
        rows = {row["user_id"]: row for row in await feedback.of_run(rated)}
        assert (rows["U0BOB"]["rating"], rows["U0BOB"]["comment"]) == ("good", "wrong column")
        ratings = await feedback.ratings_since(utc_iso(NOW), team_id="T0TEAM")
        assert (ratings.good, ratings.bad) == (1, 1)
        assert (await feedback.ratings_since(utc_iso(NOW), team_id="T0OTHER")).total == 0
        report = {row["id"]: row for row in await store.runs_since(utc_iso(NOW))}
        assert (report[rated]["feedback_good"], report[rated]["feedback_bad"]) == (1, 1)
        assert (report[unrated]["feedback_good"], report[unrated]["feedback_bad"]) == (0, 0)


async def test_the_health_ping_answers_while_open_only(store_target: Path | str) -> None:
    store = Store(store_target)
    async with store:
        assert await database_ok(store) is True
    assert await database_ok(store) is False


async def test_a_failed_transaction_leaves_nothing_behind(store_target: Path | str) -> None:
    async with Store(store_target, clock=lambda: NOW) as store:
        with pytest.raises(ZeroDivisionError):
            async with store.database.transaction() as tx:
                await tx.execute("INSERT INTO events (key, received_at) VALUES (?, ?)", ["event:doomed", "x"])
                raise ZeroDivisionError
        assert await store.claim("event:doomed") is True


async def test_a_cancelled_transaction_is_rolled_back_and_the_store_goes_on(store_target: Path | str) -> None:
    """A run stopped (cancelled) in the middle of a transaction leaves nothing behind and no
    transaction open: the next one works."""
    async with Store(store_target, clock=lambda: NOW) as store:
        inside = asyncio.Event()

        async def stopped_midway() -> None:
            async with store.database.transaction() as tx:
                await tx.execute("INSERT INTO events (key, received_at) VALUES (?, ?)", ["event:cut", "x"])
                inside.set()
                await asyncio.Event().wait()  # until cancelled

        task = asyncio.create_task(stopped_midway())
        await inside.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await store.claim("event:cut") is True
        async with store.database.transaction() as tx:
            assert await tx.fetchone("SELECT key FROM events WHERE key = ?", ["event:cut"]) is not None


async def test_another_process_holding_sqlites_write_lock_delays_the_write_not_the_event_loop(tmp_path: Path) -> None:
    """Statements run on the event loop's thread, so one that would wait for another process's
    lock must not wait there: it waits on the worker thread, the loop goes on, and it lands
    once the lock is released."""
    path = tmp_path / "analyst.db"
    async with Store(path, clock=lambda: NOW) as store:
        other = sqlite3.connect(path, isolation_level=None)  # another replica, mid-transaction
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("INSERT INTO events (key, received_at) VALUES ('event:theirs', 'x')")
            write = asyncio.create_task(store.claim("event:mine"))
            async with asyncio.timeout(10):  # the loop keeps turning while the write waits (not 30 s)
                for _ in range(50):
                    await asyncio.sleep(0)
            assert not write.done()
            other.execute("COMMIT")
            assert await write is True
        finally:
            other.close()
        assert await store.claim("event:theirs") is False  # their commit is seen
        assert await store.claim("event:mine") is False


async def test_transactions_waiting_together_commit_together_and_each_fails_alone(tmp_path: Path) -> None:
    """A burst of writes on SQLite shares its commits (one fsync for all waiting, not one each);
    what returned is durable (another connection sees it), and a transaction that failed
    leaves nothing behind while the others of its commit stay."""
    path = tmp_path / "analyst.db"
    async with Store(path, clock=lambda: NOW) as store:
        commits: list[str] = []
        store.database.conn.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)  # type: ignore[attr-defined]

        async def doomed() -> None:
            async with store.database.transaction() as tx:
                await tx.execute("INSERT INTO events (key, received_at) VALUES (?, ?)", ["event:doomed", "x"])
                raise ZeroDivisionError

        keys = [f"event:Ev{n}" for n in range(50)]
        results = await asyncio.gather(
            *(store.claim(key) for key in keys[:25]),
            doomed(),
            *(store.claim(key) for key in keys[25:]),
            return_exceptions=True,
        )
        assert [r for r in results if not isinstance(r, ZeroDivisionError)] == [True] * 50
        assert len(commits) < 5  # 51 transactions
        other = sqlite3.connect(path)
        try:
            seen = {row[0] for row in other.execute("SELECT key FROM events")}
        finally:
            other.close()
        assert seen >= set(keys) and "event:doomed" not in seen


# -- the SQL dialect ----------------------------------------------------------------------------


def test_placeholders_are_numbered_outside_quotes() -> None:
    sql = "SELECT '?' AS q, \"a?b\" FROM t WHERE a = ? AND b IN (?, ?) AND c = 'it''s ?'"
    assert to_numbered(sql) == "SELECT '?' AS q, \"a?b\" FROM t WHERE a = $1 AND b IN ($2, $3) AND c = 'it''s ?'"


def test_a_urls_password_is_never_shown() -> None:
    assert describe_target("postgresql://bot:s3cret@db.internal:5432/analyst") == (
        "postgresql://bot:***@db.internal:5432/analyst"
    )
    assert describe_target("postgresql://bot@/analyst?host=/run/pg") == "postgresql://bot@/analyst?host=/run/pg"
    assert describe_target(Path("data/analyst.db")) == "data/analyst.db"


# -- the whole bot on PostgreSQL ----------------------------------------------------------------


async def test_the_bot_answers_follows_up_rates_and_sweeps_on_postgresql(
    env: dict[str, str], slack: FakeSlack, claude: FakeAnthropic, postgres_url: str, streaming_csv: bytes
) -> None:
    """A mention with a file, a follow-up in its thread, a 👎 and the retention sweep, with
    ``ANALYST_DB`` a postgresql:// URL: what the person sees and what reached Anthropic."""
    async with Harness({**env, "ANALYST_DB": postgres_url}, slack, claude) as harness:
        first = await harness.mention("what drives churn here?", files=[harness.file("streaming.csv", streaming_csv)])
        await harness.mention("now split that by country", thread_ts=first.thread_ts)
        analyst = harness.running.analyst
        runs = await analyst.store.all_runs()
        assert [r["status"] for r in runs] == ["succeeded", "succeeded"]
        assert runs[0]["input_tokens"] > 0 and runs[1]["container_id"] == runs[0]["container_id"]
        assert len(claude.uploads_of(streaming_csv)) == 1  # the follow-up reused the upload and the container
        assert any("churn" in harness.slack.visible_text(m).lower() for m in harness.replies(first))

        await analyst.feedback.rate(run_id=runs[0]["id"], user_id="U0BOB", team_id="T0TEAM", rating="bad")
        assert (await analyst.feedback.ratings_since(utc_iso(0))).bad == 1

        await analyst.store.database.execute("UPDATE files SET created_at = '2000-01-01T00:00:00.000Z'")
        report = await analyst.sweeper.sweep_once()
        assert report.files_deleted >= 1 and report.files_failed == 0
        assert all(row["deleted_at"] is not None for row in await analyst.store.files())
