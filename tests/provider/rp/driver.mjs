// A certified OpenID Connect relying party (panva's openid-client) that tests drive through
// tests/provider/rp.py: one JSON request a line on stdin, one JSON answer a line on stdout.
//   → {"id": 1, "op": "discover", "issuer": "http://127.0.0.1:8000", "client_id": "…"}
//   ← {"id": 1, "ok": true, "result": {…}}  or  {"id": 1, "ok": false, "error": {…}}
// The checks are openid-client's own, so a test that passes here passes with a real client.
import { createInterface } from 'node:readline';
import * as client from 'openid-client';

// Our tests serve the provider on plain http://127.0.0.1 and http://localhost; openid-client
// refuses anything but https unless told otherwise, once per configuration.
const execute = [client.allowInsecureRequests];

// Per name: the configuration, and what the last authorization request must be checked against.
const rps = new Map();

function rp(name = 'rp') {
  const found = rps.get(name);
  if (!found) throw new Error(`no configuration named ${JSON.stringify(name)}: discover or register first`);
  return found;
}

function clientAuth(method = 'client_secret_basic', secret = undefined) {
  switch (method) {
    case 'client_secret_basic': return client.ClientSecretBasic(secret);
    case 'client_secret_post': return client.ClientSecretPost(secret);
    case 'none': return client.None();
    default: throw new Error(`unsupported auth_method ${JSON.stringify(method)}`);
  }
}

// The token endpoint's fields (the helpers claims() and expiresIn() are not enumerable), and
// the ID Token's claims, already validated (signature, iss, aud, exp, nonce, auth_time).
function grantResult(tokens) {
  return { tokens: { ...tokens }, claims: tokens.claims() ?? null };
}

const ops = {
  async discover({ issuer, client_id, client_secret, auth_method, name = 'rp' }) {
    const config = await client.discovery(
      new URL(issuer), client_id, undefined, clientAuth(auth_method, client_secret), { execute });
    rps.set(name, { config });
    return config.serverMetadata();
  },

  async register({ issuer, metadata, initial_access_token, name = 'rp' }) {
    // Without a secret here, ClientSecret* use the one the provider registered.
    const config = await client.dynamicClientRegistration(
      new URL(issuer), metadata, clientAuth(metadata.token_endpoint_auth_method),
      { initialAccessToken: initial_access_token, execute });
    rps.set(name, { config });
    return config.clientMetadata();
  },

  async authorize_url({ name, scope, redirect_uri, params = {} }) {
    const entry = rp(name);
    // Fresh PKCE, state and nonce each time; kept until the callback checks them.
    entry.verifier = client.randomPKCECodeVerifier();
    entry.state = client.randomState();
    entry.nonce = client.randomNonce();
    entry.maxAge = params.max_age === undefined ? undefined : Number(params.max_age);
    const extra = Object.fromEntries(Object.entries(params).map(([k, v]) => [k, String(v)]));
    const url = client.buildAuthorizationUrl(entry.config, {
      ...extra,
      scope,
      redirect_uri,
      code_challenge: await client.calculatePKCECodeChallenge(entry.verifier),
      code_challenge_method: 'S256',
      state: entry.state,
      nonce: entry.nonce,
    });
    return { url: url.href, state: entry.state, nonce: entry.nonce };
  },

  async callback({ name, url }) {
    const entry = rp(name);
    const tokens = await client.authorizationCodeGrant(entry.config, new URL(url), {
      pkceCodeVerifier: entry.verifier,
      expectedState: entry.state,
      expectedNonce: entry.nonce,
      maxAge: entry.maxAge,
      idTokenExpected: true,
    });
    return grantResult(tokens);
  },

  async refresh({ name, refresh_token }) {
    return grantResult(await client.refreshTokenGrant(rp(name).config, refresh_token));
  },

  async userinfo({ name, access_token, sub }) {
    return client.fetchUserInfo(rp(name).config, access_token, sub);
  },

  async introspect({ name, token }) {
    return client.tokenIntrospection(rp(name).config, token);
  },

  async revoke({ name, token }) {
    await client.tokenRevocation(rp(name).config, token);
    return null;
  },

  async client_credentials({ name, scope }) {
    const tokens = await client.clientCredentialsGrant(
      rp(name).config, scope === undefined ? {} : { scope });
    return { ...tokens };
  },

  async end_session_url({ name, id_token_hint, post_logout_redirect_uri, state }) {
    const params = Object.entries({ id_token_hint, post_logout_redirect_uri, state })
      .filter(([, v]) => v !== undefined);
    return { url: client.buildEndSessionUrl(rp(name).config, Object.fromEntries(params)).href };
  },
};

// What a test asserts on: ResponseBodyError carries the provider's error, error_description
// and HTTP status; a 401 with WWW-Authenticate (userinfo, registration) carries them in its
// challenge; ClientError a code (e.g. OAUTH_JWT_CLAIM_COMPARISON_FAILED) and, as cause, the
// precise check that failed ("unexpected ID Token "nonce" claim value"). JSON drops undefined.
function describe(err) {
  const challenge = Array.isArray(err?.cause) ? err.cause[0]?.parameters : undefined;
  return {
    name: err?.name ?? 'Error',
    message: err?.message ?? String(err),
    code: err?.code,
    error: err?.error ?? challenge?.error,
    error_description: err?.error_description ?? challenge?.error_description,
    status: err?.status,
    cause: err?.cause instanceof Error ? err.cause.message : undefined,
  };
}

function answer(message) {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

// One request at a time, in order; the loop ends, and so does the process, when stdin closes.
for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
  if (!line.trim()) continue;
  let id = null;
  try {
    const { id: requestId, op, ...args } = JSON.parse(line);
    id = requestId ?? null;
    if (!Object.hasOwn(ops, op)) throw new Error(`unknown op ${JSON.stringify(op)}`);
    answer({ id, ok: true, result: (await ops[op](args)) ?? null });
  } catch (err) {
    answer({ id, ok: false, error: describe(err) });
  }
}
