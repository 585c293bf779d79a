// A real OAuth 2.0 authorization server (panva/oidc-provider) for the auth tests.
//
// Usage: node server.mjs <config.json>
// The config is written by the pytest fixture (tests/auth/idp.py):
//   { "signingKeys": [<private JWK with kid>], "clients": [<client metadata>],
//     "resources": { "<indicator>": { "scope": "a b", "ttl": 300 } }, "defaultResource": "<indicator>" }
// Binds 127.0.0.1 on an ephemeral port and prints one JSON line {"issuer": ...} once it listens.
//
// Test-only admin endpoints (loopback only, like the rest of the server):
//   POST /admin/rotate        sign with a fresh RSA key from now on; old keys stay in the JWKS
//   POST /admin/jwks-outage   body {"down": true|false}: make /jwks answer 503 while down
//   POST /admin/grants        {"tokens": {<grant_type>: count}}: the token grants answered so far
//   POST /admin/revoke-grants destroy every grant given so far: their refresh tokens stop working
// Config "refreshTokens": true issues a refresh token to every client allowed the grant (as most
// IdPs do), not only for offline_access.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

import { exportJWK, generateKeyPair } from 'jose';
import Provider, { errors } from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));

function providerOptions(signingKeys) {
  return {
    clients: config.clients,
    jwks: { keys: signingKeys },
    clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'private_key_jwt'],
    enabledJWA: { clientAuthSigningAlgValues: ['RS256', 'PS256', 'ES256'] },
    features: {
      devInteractions: { enabled: Boolean(config.devInteractions) }, // a login page (console tests)
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // Without a default resource a plain client-credentials request gets an opaque token.
        defaultResource: async () => config.defaultResource,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (ctx, indicator) => {
          const server = config.resources[indicator];
          if (!server) throw new errors.InvalidTarget();
          return {
            scope: server.scope,
            audience: indicator,
            accessTokenTTL: server.ttl,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    issueRefreshToken: async (ctx, client) =>
      Boolean(config.refreshTokens) && client.grantTypeAllowed('refresh_token'),
    ttl: { ClientCredentials: (ctx, token) => token.resourceServer?.accessTokenTTL ?? 300 },
  };
}

let signingKeys = config.signingKeys;
let jwksDown = false;
let provider;
let issuer;
const tokenGrants = {};
const grantIds = new Set();

function newProvider() {
  const made = new Provider(issuer, providerOptions(signingKeys));
  made.on('grant.success', (ctx) => {
    const type = ctx.oidc.params.grant_type;
    tokenGrants[type] = (tokenGrants[type] || 0) + 1;
  });
  made.on('grant.saved', (grant) => grantIds.add(grant.jti));
  made.on('end_session.error', (ctx, err) => console.error('end_session.error', err, err.cause));
  return made;
}

async function revokeGrants() {
  for (const id of grantIds) {
    const grant = await provider.Grant.find(id);
    if (grant) await grant.destroy();
  }
  const revoked = grantIds.size;
  grantIds.clear();
  return revoked;
}

async function rotate() {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = { ...(await exportJWK(privateKey)), kid: `idp-sig-${signingKeys.length + 1}`, use: 'sig' };
  // The first key signs; the old ones stay published so tokens already issued keep validating.
  signingKeys = [jwk, ...signingKeys];
  provider = newProvider();
  return jwk.kid;
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => resolve(body));
    req.on('error', reject);
  });
}

function sendJson(res, status, value) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(value));
}

async function admin(req, res) {
  if (req.method !== 'POST') return sendJson(res, 405, { error: 'method not allowed' });
  if (req.url === '/admin/rotate') return sendJson(res, 200, { kid: await rotate() });
  if (req.url === '/admin/jwks-outage') {
    jwksDown = Boolean(JSON.parse((await readBody(req)) || '{}').down);
    return sendJson(res, 200, { down: jwksDown });
  }
  if (req.url === '/admin/grants') return sendJson(res, 200, { tokens: tokenGrants });
  if (req.url === '/admin/revoke-grants') return sendJson(res, 200, { revoked: await revokeGrants() });
  return sendJson(res, 404, { error: 'not found' });
}

const server = createServer((req, res) => {
  if (req.url.startsWith('/admin/')) {
    admin(req, res).catch((err) => sendJson(res, 500, { error: String(err) }));
  } else if (jwksDown && req.url.startsWith('/jwks')) {
    sendJson(res, 503, { error: 'temporarily_unavailable' });
  } else {
    provider.callback()(req, res);
  }
});

// Bind first so that port 0 works and the real port goes into the issuer.
server.listen(0, '127.0.0.1', () => {
  issuer = `http://127.0.0.1:${server.address().port}`;
  provider = newProvider();
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
