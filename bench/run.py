"""`make bench`: the service as users run it, against reference apps and three ceilings, on
the same machine in the same run.

A PostgreSQL of its own, seeded with 100,000 users. For each scenario, in rounds: the service
(`user-service serve`, production settings, a valid token), the service with the token check
off (bench/without_auth.py, served as the service is by bench/serve.py), the
yardstick (bench/yardstick.py, on granian), the raw ASGI ceiling (bench/ceiling.py, on
granian) and Fastify (bench/fastify/app.js), each with the same worker count, each driven by
wrk with 64 connections after a warm-up. The OpenID Provider's endpoints (token_cc, token_refresh,
userinfo) likewise against panva's oidc-provider (bench/oidc-provider/app.js), with the same
client, grants and workers. Then the server stack with no database (GET /healthz) and
PostgreSQL itself (pgbench -M prepared, the same SELECT by id and INSERT, 64 clients).
Prints a table, then the service's ratios; writes them as JSON and a chart.

On a shared machine, throughput drifts by tens of per cent from one minute to the next: the
apps take turns within each round, each round starting with another app, and a ratio is the
median of the rounds' ratios."""

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from glob import glob
from pathlib import Path

import asyncpg
import httpx2

from bench.chart import median, svg
from tests.support import CLI, Postgres, Started, free_port, run_with_connection, terminate
from user_service.crypto import digest, new_token

BENCH = Path(__file__).parent
USERS = 100_000
CONNECTIONS = 64
THREADS = 2  # wrk's
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
# BENCH_QUICK=1: one short round per scenario, no sign-ins or ceilings (about 5 minutes).
QUICK = os.environ.get("BENCH_QUICK") == "1"
SECONDS = int(os.environ.get("BENCH_SECONDS", "4" if QUICK else "15"))
WARM_UP = int(os.environ.get("BENCH_WARM_UP", "1" if QUICK else "5"))
# The OpenID Provider's, measured against oidc-provider rather than the users API's references.
PROVIDER_SCENARIOS = ("token_cc", "token_refresh", "userinfo")
SCENARIOS = os.environ.get(
    "BENCH_SCENARIOS", "get,post,patch,list,mix,token_cc,token_refresh,userinfo"
).split(",")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "1" if QUICK else "3"))
DATABASE = "user_service"
# Sign-ins: one account, a few connections (each sign-in is an argon2id hash at the
# production cost, ~19 MiB and a few dozen ms of a core; more would only queue, then 503).
LOGIN_EMAIL = "sign-in@example.com"
LOGIN_PASSWORD = "correct horse battery staple"  # noqa: S105 (a made-up account's)
LOGIN_CONNECTIONS = 4
# Refresh tokens for each token_refresh run, of a grant and a person each (users 1..GRANTS, given
# accounts): each answer hands its new one back to wrk, so a run needs only more than
# CONNECTIONS live at its start. Rotation spends them, so every run gets new ones.
GRANTS = 256
SCOPE = ["openid", "email", "profile", "offline_access"]  # a person's grant, as app.js's
PEOPLE = (
    "INSERT INTO accounts (user_id, email, email_key, email_verified_at, password_hash) "
    "SELECT n, 'person' || n || '@example.com', 'person' || n || '@example.com', now(), '-' "
    "FROM generate_series(1, $1) n"
)
# The service's grants as its code flow leaves them (accounts/provider.py): a session of the
# client with the scopes, and its refresh token, stored by its SHA-256.
GRANT = (
    "WITH grants AS (INSERT INTO auth_sessions (user_id, expires_at, client_id, scopes) "
    "SELECT n, now() + interval '30 days', $1, $2 "
    "FROM generate_series(1, cardinality($3::bytea[])) n RETURNING id, user_id) "
    "INSERT INTO refresh_tokens (token_hash, session_id) "
    "SELECT ($3::bytea[])[user_id], id FROM grants"
)


@dataclass
class Run:
    app: str
    scenario: str
    round: int
    rps: float
    p50_ms: float | None
    p99_ms: float | None
    errors: int  # non-2xx answers and socket errors
    peak_rss_mib: float | None  # the largest worker's peak


def tool(name: str) -> str:
    found = shutil.which(name) or next(iter(glob(f"/usr/lib/postgresql/*/bin/{name}")), None)
    if found is None:
        packages = {"wrk": "wrk", "pgbench": "postgresql-contrib", "node": "nodejs"}
        sys.exit(f"make bench needs {name} (Debian: sudo apt-get install {packages[name]})")
    return found


class App(Started):
    """One server under test, started as users start it, its workers' memory at hand."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], ready: str) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close)
        self.process = subprocess.Popen(
            [*command, "--port", str(self.port), "--workers", str(WORKERS)],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # see terminate()
        )
        deadline = time.monotonic() + 60
        try:
            while True:
                try:
                    if httpx2.get(self.url + ready, timeout=1).status_code == 200:
                        return
                except httpx2.TransportError:
                    pass
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"{name} did not start")
                time.sleep(0.2)
        except BaseException:
            self.close()
            raise

    def peak_rss_mib(self) -> float:
        pid = self.process.pid
        workers = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        peaks = [
            int(line.split()[1]) / 1024
            for worker in workers
            for line in Path(f"/proc/{worker}/status").read_text().splitlines()
            if line.startswith("VmHWM:")
        ]
        return round(max(peaks), 1)

    def close(self) -> None:
        terminate(self.process, timeout=60)
        self.log.close()

    def running(self) -> bool:
        return self.process.poll() is None


def wrk(
    url: str,
    scenario: str,
    seconds: int,
    token: str | None,
    connections: int = CONNECTIONS,
    more: dict[str, str] | None = None,
) -> dict[str, float]:
    summary: dict[str, float] = json.loads(
        wrk_start(url, scenario, seconds, token, connections, more)
        .communicate()[0]
        .strip()
        .splitlines()[-1]
    )
    return summary


def wrk_start(
    url: str,
    scenario: str,
    seconds: int,
    token: str | None,
    connections: int = CONNECTIONS,
    more: dict[str, str] | None = None,
) -> subprocess.Popen[str]:
    """wrk running `scenario` (with `more` of bench/scenarios.lua's variables); its last line
    of output is the JSON summary."""
    env = {**os.environ, "SCENARIO": scenario, "USERS": str(USERS), "TOKEN": token or ""}
    env |= {"EMAIL": LOGIN_EMAIL, "PASSWORD": LOGIN_PASSWORD, **(more or {})}
    return subprocess.Popen(
        [
            tool("wrk"),
            f"--connections={connections}",
            f"--threads={THREADS}",
            f"--duration={seconds}s",
            f"--script={BENCH / 'scenarios.lua'}",
            url,
        ],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )


@dataclass
class Client:
    """The bench's OAuth client, registered with the service and given to oidc-provider alike,
    and grants of people to it, new for each run."""

    dsn: str
    id: str
    secret: str

    def refresh_tokens(self, app: App, count: int) -> list[str]:
        """The refresh tokens of `count` new grants, of people 1..count: the service's
        written into its tables, oidc-provider's made by its own models (app.js)."""
        if app.name == "oidc-provider":
            made = httpx2.post(f"{app.url}/bench/grants", params={"count": count}, timeout=60)
            made.raise_for_status()
            return [str(token) for token in made.json()]
        tokens = [new_token("usr_") for _ in range(count)]
        hashes = [digest(token) for token in tokens]
        run_with_connection(self.dsn, lambda c: c.execute(GRANT, self.id, SCOPE, hashes))
        return tokens

    def access_token(self, app: App) -> str:
        """A person's access token (openid, email, profile): a new grant's, refreshed."""
        [refresh] = self.refresh_tokens(app, 1)
        form = {"grant_type": "refresh_token", "refresh_token": refresh}
        answer = httpx2.post(
            f"{app.url}/oauth/token", data=form, auth=(self.id, self.secret), timeout=30
        )
        answer.raise_for_status()
        return str(answer.json()["access_token"])

    def wrk_variables(self, app: App, scenario: str) -> dict[str, str]:
        """What bench/scenarios.lua needs for one run of a provider scenario at `app`."""
        more = {"CLIENT_ID": self.id, "CLIENT_SECRET": self.secret, "THREADS": str(THREADS)}
        if scenario == "token_refresh":
            more["REFRESH_TOKENS"] = " ".join(self.refresh_tokens(app, GRANTS))
        if scenario == "userinfo":
            more["TOKEN"] = self.access_token(app)
        return more


def measure(
    app: App,
    scenario: str,
    token: str | None,
    turn: int = 0,
    *,
    connections: int = CONNECTIONS,
    warm_up: bool = True,
    name: str | None = None,
    client: Client | None = None,
) -> Run:
    def run(seconds: int) -> dict[str, float]:
        more = client.wrk_variables(app, scenario) if client else None
        return wrk(app.url, scenario, seconds, token, connections, more)

    if warm_up:
        run(WARM_UP)
    summary = run(SECONDS)
    return Run(
        app=name or app.name,
        scenario=scenario,
        round=turn,
        rps=round(summary["requests"] / summary["seconds"], 1),
        p50_ms=round(summary["p50_ms"], 2),
        p99_ms=round(summary["p99_ms"], 2),
        errors=int(summary["non_2xx"] + summary["socket_errors"]),
        peak_rss_mib=app.peak_rss_mib(),
    )


def pgbench(postgres: Postgres, script: str) -> Run:
    result = subprocess.run(
        [
            tool("pgbench"),
            "--no-vacuum",
            "--protocol=prepared",
            f"--client={CONNECTIONS}",
            "--jobs=2",
            f"--time={SECONDS}",
            f"--file={BENCH / script}",
            "--host=127.0.0.1",
            f"--port={postgres.port}",
            "--username=postgres",
            DATABASE,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    tps = next(line for line in result.stdout.splitlines() if line.startswith("tps ="))
    name = script.removeprefix("pgbench-").removesuffix(".sql")
    return Run(
        "PostgreSQL (pgbench)", name, 0, round(float(tps.split()[2]), 1), None, None, 0, None
    )


def seed(dsn: str) -> None:
    async def fill(connection: asyncpg.Connection) -> None:
        await connection.execute("TRUNCATE users RESTART IDENTITY CASCADE")
        await connection.execute(
            "INSERT INTO users (nickname) SELECT 'user ' || n FROM generate_series(1, $1) n",
            USERS,
        )
        await connection.execute("VACUUM ANALYZE users")

    run_with_connection(dsn, fill)


def environment(postgres: Postgres) -> dict[str, str]:
    """Production settings (JSON logs, metrics, authentication) on the benchmark database."""
    env = postgres.environment(
        DB_DATABASE=DATABASE,
        BENCH_DSN=postgres.dsn(DATABASE),
        LOG_FORMAT="json",
        PYTHONPATH=str(BENCH.parent),
    )
    env = {key: value for key, value in env.items() if not key.startswith(("AUTH_", "APP_"))}
    # wrk signs in from one address, far past a person's per-minute allowance.
    return {
        **env,
        "AUTH_SECRET_KEY": secrets.token_urlsafe(32),
        "AUTH_ADDRESS_LIMIT_PER_MINUTE": "1000000000",
    }


def sign_ins(env: dict[str, str], dsn: str, token: str) -> list[Run]:
    """Sign-ins per second alone; then GET by id alone and while sign-ins run beside it."""
    runs = []
    with App("service", [CLI, "serve", "--no-migrate"], env, "/readyz") as app:
        body = {"email": LOGIN_EMAIL, "password": LOGIN_PASSWORD, "name": "Tester"}
        httpx2.post(f"{app.url}/auth/register", json=body, timeout=30).raise_for_status()
        verify = "UPDATE accounts SET email_verified_at = now() WHERE email = $1 RETURNING 1"
        while not run_with_connection(dsn, lambda c: c.fetch(verify, LOGIN_EMAIL)):
            time.sleep(0.05)  # the account is made just after the answer
        runs.append(measure(app, "login", None, connections=LOGIN_CONNECTIONS))
        runs.append(measure(app, "get", token, name="service, no sign-ins beside"))
        logins = wrk_start(app.url, "login", SECONDS, None, LOGIN_CONNECTIONS)
        runs.append(measure(app, "get", token, warm_up=False, name="service, sign-ins beside"))
        beside = json.loads(logins.communicate()[0].strip().splitlines()[-1])
        runs.append(
            Run(
                "service, GET beside",
                "login",
                0,
                round(beside["requests"] / beside["seconds"], 1),
                round(beside["p50_ms"], 2),
                round(beside["p99_ms"], 2),
                int(beside["non_2xx"] + beside["socket_errors"]),
                app.peak_rss_mib(),
            )
        )
    return runs


def apps(scenario: str) -> dict[str, tuple[list[str], str]]:
    """The apps measured in `scenario`: their commands and the path that answers when ready."""
    service = {"service": ([CLI, "serve", "--no-migrate"], "/readyz")}
    if scenario in PROVIDER_SCENARIOS:
        provider = [tool("node"), str(BENCH / "oidc-provider" / "app.js")]
        return service | {"oidc-provider": (provider, "/.well-known/openid-configuration")}
    serve = [sys.executable, str(BENCH / "serve.py")]
    # As FastAPI's users serve an app today: granian with uvloop, otherwise its defaults.
    granian = [str(Path(sys.executable).with_name("granian")), "--interface", "asgi"]
    chosen = {
        **service,
        "service, no auth": ([*serve, "bench.without_auth:app"], "/readyz"),
        "yardstick": ([*granian, "--loop", "uvloop", "bench.yardstick:app"], "/users/1"),
        "raw ASGI ceiling": ([*granian, "--loop", "uvloop", "bench.ceiling:app"], "/users/1"),
        "Fastify": ([tool("node"), str(BENCH / "fastify" / "app.js")], "/users/1"),
    }
    if QUICK:
        del chosen["service, no auth"]
    return chosen


# The service as `make run` serves it.
SERVED = ("service",)


def rounds(runs: list[Run], app: str, scenario: str) -> list[Run]:
    return [r for r in runs if r.app == app and r.scenario == scenario]


def median_round(these: list[Run]) -> Run:
    return sorted(these, key=lambda run: run.rps)[len(these) // 2]


def ratio(runs: list[Run], app: str, scenario: str, base: str, base_scenario: str = "") -> str:
    """The median of `app`'s rounds' ratios to `base`'s in the same round, with their range."""
    bases = {r.round: r.rps for r in rounds(runs, base, base_scenario or scenario)}
    if not bases:
        return ""
    # A ceiling measured once serves every round.
    ratios = [
        r.rps / bases.get(r.round, median(list(bases.values())))
        for r in rounds(runs, app, scenario)
    ]
    low, high = min(ratios), max(ratios)
    spread = f" ({low:.2f}-{high:.2f})" if len(ratios) > 1 else ""
    return f"{median(ratios):.2f}x{spread}"


def table(runs: list[Run]) -> str:
    """One row per app and scenario: its median round (req/s, latencies, errors summed), and
    the median of its rounds' ratios with their range."""
    lines = [
        "| Scenario | App | req/s | p50 ms | p99 ms | Errors | Peak RSS/worker MiB "
        "| vs yardstick | vs Fastify | vs oidc-provider | auth on/off | vs /healthz "
        "| vs PostgreSQL | vs raw ASGI |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | ---: |",
    ]
    seen = list(dict.fromkeys((r.scenario, r.app) for r in runs))
    for scenario, app in seen:
        these = rounds(runs, app, scenario)
        r = median_round(these)
        cells = [""] * 7
        if app in SERVED and scenario in SCENARIOS:
            database = {"get": "select", "post": "insert"}.get(scenario)
            cells = [
                ratio(runs, app, scenario, "yardstick"),
                ratio(runs, app, scenario, "Fastify"),
                ratio(runs, app, scenario, "oidc-provider"),
                ratio(runs, app, scenario, "service, no auth"),
                ratio(runs, app, scenario, "service", "healthz"),
                ratio(runs, app, scenario, "PostgreSQL (pgbench)", database) if database else "",
                ratio(runs, app, scenario, "raw ASGI ceiling"),
            ]
        lines.append(
            f"| {scenario} | {app} | {r.rps:,.0f} | {r.p50_ms or ''} | {r.p99_ms or ''} "
            f"| {sum(run.errors for run in these)} | {r.peak_rss_mib or ''} | {' | '.join(cells)} |"
        )
    if rounds(runs, "service", "get") and rounds(runs, "service", "list"):
        per_get = ratio(runs, "service", "list", "service", "get")
        lines.append(f"\nList page (limit=50) / GET by id, service: {per_get}")
    logins = rounds(runs, "service", "login")
    beside = rounds(runs, "service, sign-ins beside", "get")
    if logins and beside:
        [alone] = rounds(runs, "service, no sign-ins beside", "get")
        lines.append(
            f"Sign-ins/s ({LOGIN_CONNECTIONS} connections, argon2id at the production cost): "
            f"{logins[0].rps:,.0f}, p99 {logins[0].p99_ms} ms; GET p99 alone {alone.p99_ms} ms, "
            f"beside sign-ins {beside[0].p99_ms} ms ({beside[0].rps:,.0f} req/s)"
        )
    return "\n".join(lines)


def ratios(runs: list[Run]) -> str:
    """The service against the references, a line per scenario: what to read first."""
    lines = [
        "| Scenario | Server | req/s | vs yardstick | vs Fastify | vs oidc-provider "
        "| vs raw ASGI | p99 ms, worst round | yardstick's | Errors |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for scenario in SCENARIOS:
        for app in SERVED:
            these = rounds(runs, app, scenario)
            if not these:
                continue
            r = median_round(these)
            yardstick = rounds(runs, "yardstick", scenario)
            lines.append(
                f"| {scenario} | {app} | {r.rps:,.0f} "
                f"| {ratio(runs, app, scenario, 'yardstick')} "
                f"| {ratio(runs, app, scenario, 'Fastify')} "
                f"| {ratio(runs, app, scenario, 'oidc-provider')} "
                f"| {ratio(runs, app, scenario, 'raw ASGI ceiling')} "
                f"| {max(run.p99_ms or 0 for run in these)} "
                f"| {max((run.p99_ms or 0 for run in yardstick), default='')} "
                f"| {sum(x.errors for x in these)} |"
            )
    return "\n".join(lines)


def chart(runs: list[Run]) -> str:
    every = dict.fromkeys(name for scenario in SCENARIOS for name in apps(scenario))
    names = [name for name in every if any(r.app == name for r in runs)]
    length = f"{ROUNDS} round{'s' if ROUNDS > 1 else ''} of {SECONDS} s"
    note = f"{WORKERS} workers each, {CONNECTIONS} connections, {length}, {os.cpu_count()} CPUs"
    return svg([asdict(r) for r in runs], names, SCENARIOS, "req/s, median of the rounds", note)


def oauth_client(env: dict[str, str], dsn: str) -> Client:
    """People to grant (users 1..GRANTS, given accounts) and the bench's client, registered."""
    run_with_connection(dsn, lambda c: c.execute(PEOPLE, GRANTS))
    grant_types = "authorization_code,client_credentials,refresh_token"
    scopes = ",".join([*SCOPE, "users:read"])
    create = ["clients", "create", "--name", "bench", "--redirect-uri", "http://127.0.0.1/cb"]
    created = subprocess.run(
        [CLI, *create, "--grant-types", grant_types, "--scopes", scopes],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    registration = json.loads(created.stdout)
    return Client(dsn, registration["client_id"], registration["client_secret"])


def main() -> int:
    tool("wrk"), tool("pgbench")  # fail early, saying what to install
    runs: list[Run] = []
    with (
        tempfile.TemporaryDirectory(prefix="user-service-bench-") as scratch,
        Postgres(Path(scratch), config="max_connections = 200") as postgres,
    ):
        env = environment(postgres)
        subprocess.run([CLI, "migrate"], env=env, check=True, capture_output=True)
        seed(postgres.dsn(DATABASE))
        token = subprocess.run(
            [CLI, "tokens", "create", "--name", "bench", "--scopes", "users:read,users:write"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        client = None
        if set(SCENARIOS) & set(PROVIDER_SCENARIOS):
            client = oauth_client(env, postgres.dsn(DATABASE))
            env |= {"CLIENT_ID": client.id, "CLIENT_SECRET": client.secret}  # for app.js
        for scenario in SCENARIOS:
            for turn in range(ROUNDS):
                # Each app goes first in a round of its own: no app always follows another.
                order = list(apps(scenario).items())
                order = order[turn % len(order) :] + order[: turn % len(order)]
                for name, (command, ready) in order:
                    print(f"{scenario}, round {turn + 1}: {name}", file=sys.stderr, flush=True)
                    with App(name, command, env, ready) as app:
                        provider = client if scenario in PROVIDER_SCENARIOS else None
                        runs.append(measure(app, scenario, token, turn, client=provider))
        if not QUICK:
            print("sign-ins, and GET beside them", file=sys.stderr, flush=True)
            runs += sign_ins(env, postgres.dsn(DATABASE), token)
            print("ceilings: /healthz, pgbench", file=sys.stderr, flush=True)
            with App("service", [CLI, "serve", "--no-migrate"], env, "/readyz") as app:
                runs.append(measure(app, "healthz", None))
            runs += [
                pgbench(postgres, "pgbench-select.sql"),
                pgbench(postgres, "pgbench-insert.sql"),
            ]
    out = Path(".data/bench/result.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    machine = {
        "cpus": os.cpu_count(),
        "workers": WORKERS,
        "connections": CONNECTIONS,
        "rounds": ROUNDS,
        "seconds": SECONDS,
    }
    out.write_text(json.dumps({"machine": machine, "runs": [asdict(r) for r in runs]}, indent=2))
    out.with_suffix(".svg").write_text(chart(runs))
    print(table(runs))
    print(f"\n(also in {out} and, as a chart, {out.with_suffix('.svg')})\n")
    print(ratios(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
