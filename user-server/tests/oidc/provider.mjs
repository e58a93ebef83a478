// A real OpenID Provider for the tests: panva's certified oidc-provider,
// on 127.0.0.1:PORT, with its development login and consent pages.
//
//   node provider.mjs PORT CALLBACK_URL
//
// Accounts are made up from the login name typed:
//   NAME            NAME@example.com, verified
//   NAME~unverified NAME@example.com, not verified
//   NAME~nomail     no address
// Clients: `svc` (secret `svc-secret`, code + PKCE S256, the callback
// given) and `other` (another audience). Prints "listening" when ready.
import Provider from 'oidc-provider';

const [port, callback] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;

function claimsOf(id) {
  const [name, flag] = id.split('~');
  const claims = { sub: id, preferred_username: name };
  if (flag !== 'nomail') {
    claims.email = `${name}@example.com`;
    claims.email_verified = flag !== 'unverified';
  }
  return claims;
}

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'svc',
      client_secret: 'svc-secret',
      redirect_uris: [callback],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_post',
    },
    {
      client_id: 'other',
      client_secret: 'other-secret',
      redirect_uris: ['http://127.0.0.1:9/cb'],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_post',
    },
  ],
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['preferred_username'] },
  findAccount: async (ctx, id) => ({ accountId: id, claims: async () => claimsOf(id) }),
  pkce: { required: () => true, methods: ['S256'] },
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ['test-only-cookie-key'] },
  // The client asks for the address in the ID token itself.
  conformIdTokenClaims: false,
});
provider.proxy = false;
provider.listen(Number(port), '127.0.0.1', () => console.log('listening'));
