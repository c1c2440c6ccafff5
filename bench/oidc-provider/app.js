// panva's oidc-provider (a certified OpenID Provider, the one Logto builds on), the reference of
// make bench's OpenID Provider scenarios, as its users serve it: a cluster of workers sharing
// their keys and a PostgreSQL adapter, opaque tokens (its default), refresh tokens rotated, the
// service's client, scopes, token lifetimes and paths (/oauth/token, /oauth/userinfo).
// BENCH_DSN=postgresql://... CLIENT_ID=... CLIENT_SECRET=... \
//   node bench/oidc-provider/app.js --port P --workers N
import cluster from 'node:cluster'
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { parseArgs } from 'node:util'
import Provider from 'oidc-provider'
import pg from 'pg'

const options = { port: { type: 'string' }, workers: { type: 'string' } }
const { values: args } = parseArgs({ options })
// A person's grant as the service's bench client gets it; people are the users with an account.
const SCOPE = 'openid email profile offline_access'

// One row per stored model instance, its payload as jsonb, the lookups the Adapter interface
// needs beside it (grantId, uid, userCode).
const schema = `
  CREATE TABLE IF NOT EXISTS oidc_payloads (
    kind text NOT NULL, id text NOT NULL, payload jsonb NOT NULL, grant_id text, uid text,
    user_code text, expires_at timestamptz, PRIMARY KEY (kind, id));
  CREATE INDEX IF NOT EXISTS oidc_payloads_grant_id ON oidc_payloads (grant_id);
  CREATE INDEX IF NOT EXISTS oidc_payloads_uid ON oidc_payloads (uid);
  CREATE INDEX IF NOT EXISTS oidc_payloads_user_code ON oidc_payloads (user_code);`

if (cluster.isPrimary) {
  const client = new pg.Client({ connectionString: process.env.BENCH_DSN })
  await client.connect()
  await client.query(schema)
  await client.end()
  // The workers sign with one key and one cookie secret, as a deployment's configuration gives.
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const keys = { OIDC_JWK: JSON.stringify(privateKey.export({ format: 'jwk' })) }
  keys.OIDC_COOKIE_KEY = randomBytes(32).toString('base64url')
  const workers = Array.from({ length: Number(args.workers) }, () => cluster.fork(keys))
  process.on('SIGTERM', async () => {
    const running = workers.filter((worker) => !worker.isDead())
    for (const worker of running) worker.process.kill()
    await Promise.all(running.map((worker) => once(worker, 'exit')))
    process.exit(0)
  })
} else {
  const pool = new pg.Pool({ connectionString: process.env.BENCH_DSN, max: 16 })
  // Named statements, prepared once per connection, as asyncpg prepares every query.
  const query = async (name, text, values) => (await pool.query({ name, text, values })).rows

  // oidc-provider's Adapter interface (its memory adapter is per process, not for a cluster).
  class PostgresAdapter {
    constructor(kind) {
      this.kind = kind
    }

    async upsert(id, payload, expiresIn) {
      const text = `INSERT INTO oidc_payloads (kind, id, payload, grant_id, uid, user_code,
        expires_at) VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7))
        ON CONFLICT (kind, id) DO UPDATE SET payload = excluded.payload,
        grant_id = excluded.grant_id, uid = excluded.uid, user_code = excluded.user_code,
        expires_at = excluded.expires_at`
      const { grantId, uid, userCode } = payload
      await query('upsert', text, [this.kind, id, payload, grantId, uid, userCode, expiresIn])
    }

    async #find(name, column, value) {
      const text = `SELECT payload FROM oidc_payloads WHERE kind = $1 AND ${column} = $2
        AND (expires_at IS NULL OR expires_at > now())`
      return (await query(name, text, [this.kind, value]))[0]?.payload
    }

    find(id) { return this.#find('find', 'id', id) }
    findByUid(uid) { return this.#find('find-uid', 'uid', uid) }
    findByUserCode(userCode) { return this.#find('find-user-code', 'user_code', userCode) }

    async consume(id) {
      const text = `UPDATE oidc_payloads SET payload = payload || jsonb_build_object('consumed',
        floor(extract(epoch FROM now()))) WHERE kind = $1 AND id = $2`
      await query('consume', text, [this.kind, id])
    }

    async destroy(id) {
      const text = 'DELETE FROM oidc_payloads WHERE kind = $1 AND id = $2'
      await query('destroy', text, [this.kind, id])
    }

    async revokeByGrantId(grantId) {
      const text = 'DELETE FROM oidc_payloads WHERE kind = $1 AND grant_id = $2'
      await query('revoke', text, [this.kind, grantId])
    }
  }

  const issuer = `http://127.0.0.1:${args.port}`
  const minutes = 60
  const days = 24 * 60 * minutes
  const provider = new Provider(issuer, {
    adapter: PostgresAdapter,
    clients: [
      {
        client_id: process.env.CLIENT_ID,
        client_secret: process.env.CLIENT_SECRET,
        grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
        redirect_uris: ['http://127.0.0.1/cb'],
        scope: `${SCOPE} users:read`,
      },
    ],
    // users:read is a plain scope of the provider's, which client_credentials grants when
    // the client may have it (no resource indicators needed).
    scopes: ['openid', 'offline_access', 'users:read'],
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    features: {
      clientCredentials: { enabled: true },
      devInteractions: { enabled: false }, // no authorization flow is measured
      userinfo: { enabled: true },
    },
    rotateRefreshToken: true,
    jwks: { keys: [JSON.parse(process.env.OIDC_JWK)] },
    cookies: { keys: [process.env.OIDC_COOKIE_KEY] },
    // The service's defaults (AUTH_ACCESS_TTL, AUTH_REFRESH_TTL; ID tokens 5 minutes).
    ttl: {
      AccessToken: 15 * minutes, ClientCredentials: 15 * minutes, IdToken: 5 * minutes,
      RefreshToken: 30 * days, Grant: 30 * days,
    },
    routes: { token: '/oauth/token', userinfo: '/oauth/userinfo' },
    async findAccount(ctx, sub) {
      const text = `SELECT u.nickname, a.email, a.email_verified_at FROM users u JOIN accounts a
        ON a.user_id = u.id WHERE u.id = $1 AND a.disabled_at IS NULL`
      const [person] = await query('account', text, [sub])
      if (!person) return undefined
      const { email, nickname: name } = person
      const claims = () => ({ sub, email, email_verified: person.email_verified_at !== null, name })
      return { accountId: sub, claims }
    },
  })

  // Setup only (bench/run.py, before each measurement): POST /bench/grants?count=N gives N
  // fresh grants of people 1..N, as a code flow with offline_access leaves them (a Grant and
  // its RefreshToken), made with the provider's own models and saved through the adapter;
  // answers their refresh tokens.
  provider.use(async (ctx, next) => {
    if (ctx.path !== '/bench/grants' || ctx.method !== 'POST') return next()
    const client = await provider.Client.find(process.env.CLIENT_ID)
    const authTime = Math.floor(Date.now() / 1000)
    const mint = async (accountId) => {
      const grant = new provider.Grant({ accountId, clientId: client.clientId })
      grant.addOIDCScope(SCOPE)
      const grantId = await grant.save()
      const gty = 'authorization_code'
      const refresh = { client, accountId, grantId, gty, scope: SCOPE, authTime }
      return new provider.RefreshToken(refresh).save()
    }
    const people = Array.from({ length: Number(ctx.query.count) }, (_, i) => String(i + 1))
    ctx.body = await Promise.all(people.map(mint))
  })
  provider.listen(Number(args.port), '127.0.0.1')
}
