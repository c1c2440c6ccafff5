// A company's identity provider for the upstream sign-in tests: panva's oidc-provider (an
// OpenID Certified provider), with its development sign-in pages, which accept any login and
// password. The login typed is the person: their subject and email address; a login that
// starts with "unverified" gets email_verified false.
// node app.mjs --port P --client-id ID --client-secret SECRET --redirect-uri URI
import { parseArgs } from 'node:util'
import Provider from 'oidc-provider'

const options = {
  port: { type: 'string' },
  'client-id': { type: 'string' },
  'client-secret': { type: 'string' },
  'redirect-uri': { type: 'string' },
}
const { values: args } = parseArgs({ options })

const provider = new Provider(`http://127.0.0.1:${args.port}`, {
  clients: [
    {
      client_id: args['client-id'],
      client_secret: args['client-secret'],
      redirect_uris: [args['redirect-uri']],
      grant_types: ['authorization_code'],
    },
  ],
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, sub) {
    return {
      accountId: sub,
      async claims() {
        return {
          sub,
          email: sub,
          email_verified: !sub.startsWith('unverified'),
          name: `Person ${sub.split('@')[0]}`,
        }
      },
    }
  },
})
provider.listen(Number(args.port), '127.0.0.1', () => console.log('listening'))
