// panva/oidc-provider (OpenID Certified) configured as the services' authorization server, for tests/interop.
//
// Nothing here is tailored to the services' code: it is the configuration an operator would write for
// any RFC 8707 + RFC 9068 deployment. Resource servers and their scopes, crm-mcp's machine client and the
// listening port come from the environment (the test generates them):
//   INTEROP_ISSUER       issuer URL, e.g. http://127.0.0.1:40123
//   INTEROP_PORT         port to listen on (127.0.0.1 only)
//   INTEROP_RESOURCES    JSON {"<resource indicator>": {"scope": "a b", "clients": "users" | "<client_id>"}}
//   INTEROP_M2M_CLIENT   JSON {"client_id": "...", "client_secret": "..."}: a confidential client (client credentials)
//   INTEROP_PROBE_CLIENT JSON {"client_id": "...", "client_secret": "..."}: like the machine client, but its
//                        tokens live 1 s (to test that an expired token from a real provider is refused)
//   INTEROP_EXCHANGE     JSON {"<subject token audience>": "<resource it may be exchanged for>"}: RFC 8693 policy
// Users log in on the development login pages (any username, any password: test use only).
import { createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';

import { createLocalJWKSet, jwtVerify } from 'jose';
import Provider, { errors } from 'oidc-provider';

const issuer = process.env.INTEROP_ISSUER;
const port = Number(process.env.INTEROP_PORT);
const resources = JSON.parse(process.env.INTEROP_RESOURCES);
const machineClient = JSON.parse(process.env.INTEROP_M2M_CLIENT);
const probeClient = JSON.parse(process.env.INTEROP_PROBE_CLIENT);
const exchangePolicy = JSON.parse(process.env.INTEROP_EXCHANGE || '{}');
const TOKEN_TTL = 10 * 60;
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

// A fresh RSA signing key per run; oidc-provider publishes it at /jwks.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const keyFields = { kid: `interop-${randomBytes(4).toString('hex')}`, use: 'sig', alg: 'RS256' };
const signingKey = { ...privateKey.export({ format: 'jwk' }), ...keyFields };
const publicKeys = createLocalJWKSet({ keys: [{ ...createPublicKey(privateKey).export({ format: 'jwk' }), ...keyFields }] });

// A resource server as oidc-provider describes it: its scopes, and JWT access tokens (RFC 9068, typ at+jwt)
// signed with the key above.
function resourceServer(resourceIndicator) {
  const resource = resources[resourceIndicator];
  if (!resource) throw new errors.InvalidTarget(`unknown resource ${resourceIndicator}`);
  return new provider.ResourceServer(resourceIndicator, {
    scope: resource.scope,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: 'RS256' } },
  });
}

// Who may get a token for which resource: a resource for users (any client acting for a logged-in user)
// or for one machine client (client credentials). Anything else is invalid_target.
function resourceServerInfo(ctx, resourceIndicator, client) {
  const server = resourceServer(resourceIndicator);
  const { clients } = resources[resourceIndicator];
  const clientId = client.clientId === probeClient.client_id ? machineClient.client_id : client.clientId;
  const allowed = clients === 'users' ? clientId !== machineClient.client_id : clients === clientId;
  if (!allowed) throw new errors.InvalidTarget(`${client.clientId} may not get tokens for ${resourceIndicator}`);
  return { scope: server.scope, accessTokenFormat: server.accessTokenFormat, jwt: server.jwt };
}

const provider = new Provider(issuer, {
  clients: [machineClient, probeClient].map(({ client_id, client_secret }) => ({
    client_id,
    client_secret,
    grant_types: client_id === machineClient.client_id ? ['client_credentials', TOKEN_EXCHANGE] : ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
  })),
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  features: {
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    registration: { enabled: true }, // RFC 7591, open registration (MCP clients register themselves)
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: (ctx, client, oneOf) => oneOf,
      useGrantedResource: () => true,
      getResourceServerInfo: resourceServerInfo,
    },
  },
  // `act` (RFC 8693 §4.1) on exchanged tokens: the client that acts for the user.
  extraTokenClaims: (ctx, token) => (token.gty === TOKEN_EXCHANGE ? { act: { sub: token.clientId } } : undefined),
  // Every resource's scopes are also the server's (advertised in scopes_supported): MCP clients register
  // with the scopes crm-mcp advertises, and registration accepts only scopes the server supports.
  scopes: ['openid', 'offline_access', ...new Set(Object.values(resources).flatMap(({ scope }) => scope.split(' ')))],
  pkce: { required: () => true },
  ttl: {
    AccessToken: TOKEN_TTL,
    ClientCredentials: (ctx, token, client) => (client.clientId === probeClient.client_id ? 1 : TOKEN_TTL),
    AuthorizationCode: 60,
    Grant: 3600,
    Interaction: 600,
    Session: 3600,
  },
});

// RFC 8693 token exchange through oidc-provider's documented extension point (registerGrantType): the machine
// client trades a user's access token issued for one resource (its own) for a token for another resource,
// with the same user (sub), scopes narrowed to what was asked and the user had, `act` naming the client, and
// a lifetime that ends no later than the subject token's.

async function tokenExchange(ctx) {
  const { client, params } = ctx.oidc;
  if (client.clientId !== machineClient.client_id) throw new errors.UnauthorizedClient('client may not exchange tokens');
  if (params.subject_token_type !== ACCESS_TOKEN_TYPE) throw new errors.InvalidRequest('unsupported subject_token_type');
  if (params.actor_token) throw new errors.InvalidRequest('actor_token is not supported');
  let subject;
  try {
    ({ payload: subject } = await jwtVerify(params.subject_token, publicKeys, { issuer, typ: 'at+jwt' }));
  } catch {
    throw new errors.InvalidGrant('subject token is invalid or expired');
  }
  const target = params.resource || params.audience;
  if (!target || exchangePolicy[subject.aud] !== target) throw new errors.InvalidTarget('this exchange is not allowed');
  const server = resourceServer(target);
  const held = new Set(String(subject.scope || '').split(' ').filter(Boolean));
  const requested = params.scope ? params.scope.split(' ') : [...held];
  const scope = requested.filter((value) => held.has(value) && server.scopes.has(value));
  if (!scope.length) throw new errors.InvalidScope('none of the requested scopes can be granted', params.scope);
  const token = new provider.AccessToken({ accountId: subject.sub, client, scope: scope.join(' '), gty: TOKEN_EXCHANGE });
  token.resourceServer = server;
  token.setAudience(target);
  token.exp = Math.min(subject.exp, Math.floor(Date.now() / 1000) + TOKEN_TTL);
  ctx.body = {
    access_token: await token.save(),
    issued_token_type: ACCESS_TOKEN_TYPE,
    token_type: 'Bearer',
    expires_in: token.exp - Math.floor(Date.now() / 1000),
    scope: token.scope,
  };
}

provider.registerGrantType(TOKEN_EXCHANGE, tokenExchange, ['subject_token', 'subject_token_type', 'actor_token', 'actor_token_type', 'requested_token_type', 'resource', 'audience', 'scope']);

provider.on('server_error', (ctx, error) => console.error('server_error', error));
provider.listen(port, '127.0.0.1', () => console.log(`oidc-provider ${issuer} listening on 127.0.0.1:${port}`));
