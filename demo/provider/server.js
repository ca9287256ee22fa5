// Local OpenID Provider for the authz tests and `make demo`, built on oidc-provider 9.
// It behaves like Dex (our production provider) where the gateway can tell the difference:
// Dex's `sub` encoding, email/email_verified/name/groups claims in the ID token itself, Dex's
// /keys and /userinfo paths, and a refresh token for every code grant, rotated on each use
// (presenting a rotated-away one revokes the whole grant). Without offline_access, tokens end
// with the provider session, so RP-initiated logout revokes them.
//
// Environment:
//   PROVIDER_PORT              port to listen on, 127.0.0.1 only (default 5556, 0 = any free port)
//   PROVIDER_ISSUER            issuer URL (default http://127.0.0.1:$PORT); a path (…/dex) is served
//   CLIENT_ID, CLIENT_SECRET   the one registered client (default authz / authz-secret)
//   REDIRECT_URIS              comma-separated redirect URIs (default http://127.0.0.1:8080/oauth2/callback)
//   POST_LOGOUT_REDIRECT_URIS  comma-separated post-logout redirect URIs (default none)
//   ID_TOKEN_TTL, ACCESS_TOKEN_TTL  lifetimes in seconds (default 3600 each)
//   REFRESH_TOKEN_TTL          refresh token lifetime in seconds (default 14 days)
//   DEMO_USERS                 JSON array [{email, password, name, groups, userID, preferred_username,
//                              email_verified}]; default user@example.com / password ("Demo User",
//                              team-a, everyone) and other@example.com / password ("Other User", team-b)
//   COOKIE_KEYS                comma-separated keys that sign the provider's cookies (default fixed)
//   PROVIDER_DATA_DIR          optional directory; signing keys (jwks.json) and sessions, grants and
//                              tokens (state.json) are kept there so a restart keeps them, as Dex's
//                              storage does. Without it keys are new and state is lost on each start.
//
// Pages are plain HTML forms without external resources:
//   /interaction/:uid  login form (GET); POST it back to the same URL with `username` (the email;
//                      Dex's field name `login` works too) and `password`. A failed login answers
//                      200 with the form again and an error message (class "error").
//   No consent page: the requested scopes and claims are granted as they are asked for.
//   /session/end       RP-initiated logout: one form (hidden `xsrf` and `logout=yes`) that a script
//                      submits; without scripts, POST the form as is to /session/end/confirm.
// Cookies (op_session, op_interaction, op_resume) are never `secure`, so plain http works.
// Logs "listening ISSUER" to stderr once it accepts requests.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

import Provider from 'oidc-provider';

const env = process.env;
const list = (value) => (value || '').split(',').map((s) => s.trim()).filter(Boolean);
const seconds = (value, fallback) => (value ? Number.parseInt(value, 10) : fallback);
const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const DATA_DIR = env.PROVIDER_DATA_DIR || '';

// Dex's `sub` is base64url(protobuf {1: user id, 2: connector id}); static users use connector "local".
function dexSubject(userId, connectorId = 'local') {
  const field = (tag, text) => Buffer.concat([Buffer.from([tag, Buffer.byteLength(text)]), Buffer.from(text)]);
  if (Buffer.byteLength(userId) > 127) throw new Error(`user id too long: ${userId}`); // 1-byte length
  return Buffer.concat([field(0x0a, userId), field(0x12, connectorId)]).toString('base64url');
}

const USERS = (env.DEMO_USERS ? JSON.parse(env.DEMO_USERS) : [
  { email: 'user@example.com', password: 'password', name: 'Demo User', groups: ['team-a', 'everyone'], userID: '08a8684b-db88-4b73-90a9-3cd1661f5466' },
  { email: 'other@example.com', password: 'password', name: 'Other User', groups: ['team-b'], userID: '3c1f5c51-6c3e-4a8e-9a5f-7f0d2b1e9c42' },
]).map((u) => ({ ...u, sub: u.sub || dexSubject(u.userID || u.email) }));
const usersBySub = new Map(USERS.map((u) => [u.sub, u]));
const findUser = (login) => USERS.find((u) => [u.email, u.preferred_username]
  .some((name) => name && name.toLowerCase() === String(login).trim().toLowerCase()));

// Signing keys: RS256 (what ID tokens are signed with) and ES256, both published in the JWKS.
function loadKeys() {
  const file = DATA_DIR && path.join(DATA_DIR, 'jwks.json');
  if (file && fs.existsSync(file)) return JSON.parse(fs.readFileSync(file, 'utf8'));
  const make = (type, options, alg) => ({
    ...crypto.generateKeyPairSync(type, options).privateKey.export({ format: 'jwk' }),
    kid: crypto.randomBytes(8).toString('hex'), alg, use: 'sig',
  });
  const jwks = { keys: [make('rsa', { modulusLength: 2048 }, 'RS256'), make('ec', { namedCurve: 'P-256' }, 'ES256')] };
  if (file) fs.writeFileSync(file, JSON.stringify(jwks), { mode: 0o600 });
  return jwks;
}

// Storage adapter: a map, mirrored to PROVIDER_DATA_DIR/state.json after each change when set.
const stateFile = DATA_DIR && path.join(DATA_DIR, 'state.json');
const store = new Map(stateFile && fs.existsSync(stateFile)
  ? Object.entries(JSON.parse(fs.readFileSync(stateFile, 'utf8'))) : []);
function persist() {
  if (!stateFile) return;
  const now = Date.now();
  for (const [key, entry] of store) if (entry.exp && entry.exp < now) store.delete(key);
  fs.writeFileSync(`${stateFile}.tmp`, JSON.stringify(Object.fromEntries(store)));
  fs.renameSync(`${stateFile}.tmp`, stateFile);
}
const live = (key) => {
  const entry = store.get(key);
  return entry && (!entry.exp || entry.exp > Date.now()) ? entry.value : undefined;
};
class Adapter {
  constructor(model) { this.model = model; }
  key(id) { return `${this.model}:${id}`; }
  async upsert(id, payload, expiresIn) {
    const exp = expiresIn ? Date.now() + expiresIn * 1000 : 0;
    store.set(this.key(id), { value: payload, exp });
    if (this.model === 'Session') store.set(`sessionUid:${payload.uid}`, { value: id, exp });
    if (payload.grantId) {
      const members = live(`grant:${payload.grantId}`) || [];
      store.set(`grant:${payload.grantId}`, { value: [...new Set([...members, this.key(id)])], exp: 0 });
    }
    persist();
  }
  async find(id) { return live(this.key(id)); }
  async findByUid(uid) { const id = live(`sessionUid:${uid}`); return id && this.find(id); }
  async findByUserCode() { return undefined; }
  async consume(id) {
    const payload = live(this.key(id));
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
    persist();
  }
  async destroy(id) { store.delete(this.key(id)); persist(); }
  async revokeByGrantId(grantId) {
    for (const key of live(`grant:${grantId}`) || []) store.delete(key);
    store.delete(`grant:${grantId}`);
    persist();
  }
}

const page = (title, body) => `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>body{font-family:sans-serif;max-width:22em;margin:3em auto}label,input,button{display:block;margin:.4em 0}
input{width:100%}.error{color:#b00}</style></head>
<body><h1>${esc(title)}</h1>${body}</body></html>`;

const loginPage = (action, login, error) => page('Log in', `
${error ? `<p class="error" id="error">${esc(error)}</p>` : ''}
<form method="post" action="${esc(action)}">
<label for="username">Email Address</label>
<input type="text" id="username" name="username" value="${esc(login)}" autocomplete="username" autofocus required>
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required>
<button type="submit" id="submit-login">Login</button>
</form>`);

function configuration(mount) {
  return {
    adapter: Adapter,
    clients: [{
      client_id: env.CLIENT_ID || 'authz',
      client_secret: env.CLIENT_SECRET || 'authz-secret',
      redirect_uris: list(env.REDIRECT_URIS || 'http://127.0.0.1:8080/oauth2/callback'),
      post_logout_redirect_uris: list(env.POST_LOGOUT_REDIRECT_URIS),
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic', // client_secret_post is accepted as well
    }],
    clientAuthMethods: ['client_secret_basic', 'client_secret_post'],
    responseTypes: ['code'],
    pkce: { required: () => true }, // only S256 exists in oidc-provider 9
    jwks: loadKeys(),
    cookies: {
      keys: list(env.COOKIE_KEYS || 'authz-demo-provider-cookie-key'),
      names: { session: 'op_session', interaction: 'op_interaction', resume: 'op_resume' },
      long: { httpOnly: true, sameSite: 'lax' }, // no `secure`: it would break plain http
      short: { httpOnly: true, sameSite: 'lax' },
    },
    scopes: ['openid', 'offline_access', 'email', 'profile', 'groups'],
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'preferred_username'], groups: ['groups'] },
    conformIdTokenClaims: false, // scope claims go in the ID token, not only in userinfo
    async findAccount(ctx, sub) {
      const user = usersBySub.get(sub);
      if (!user) return undefined;
      const { email, name, preferred_username: username, email_verified: verified = true } = user;
      const claims = { sub, email, email_verified: verified, name, preferred_username: username, groups: user.groups || [] };
      return { accountId: sub, claims: async () => claims };
    },
    // Consent: whatever the client asks for is granted, so no consent page is ever shown.
    async loadExistingGrant(ctx) {
      const { oidc } = ctx;
      const { Grant } = oidc.provider;
      const grantId = oidc.result?.consent?.grantId || oidc.session.grantIdFor(oidc.client.clientId);
      let grant = grantId && await Grant.find(grantId);
      if (!grant || grant.accountId !== oidc.session.accountId) {
        grant = new Grant({ clientId: oidc.client.clientId, accountId: oidc.session.accountId });
      }
      grant.addOIDCScope([...oidc.requestParamOIDCScopes].join(' '));
      if (oidc.requestParamClaims.size) grant.addOIDCClaims([...oidc.requestParamClaims]);
      await grant.save();
      return grant;
    },
    issueRefreshToken: (ctx, client) => client.grantTypeAllowed('refresh_token'), // Dex: always
    rotateRefreshToken: () => true, // Dex: a refresh token is good for one use
    routes: { jwks: '/keys', userinfo: '/userinfo' }, // Dex's paths
    interactions: { url: (ctx, interaction) => `${mount}/interaction/${interaction.uid}` },
    features: {
      devInteractions: { enabled: false },
      dPoP: { enabled: false }, // Dex has neither DPoP nor PAR
      pushedAuthorizationRequests: { enabled: false },
      revocation: { enabled: true },
      rpInitiatedLogout: {
        enabled: true,
        // The confirmation form carries logout=yes and submits itself (button for no-script clients).
        async logoutSource(ctx, form) {
          ctx.body = page('Log out', `${form.replace('</form>',
            '<input type="hidden" name="logout" value="yes"><button type="submit" id="submit-logout">Log out</button></form>')}
<script>document.forms[0].submit()</script>`);
        },
        async postLogoutSuccessSource(ctx) {
          ctx.body = page('Logged out', '<p id="logged-out">You have been logged out.</p>');
        },
      },
    },
    async renderError(ctx, out) {
      ctx.type = 'html';
      ctx.body = page('Error', Object.entries(out)
        .map(([key, value]) => `<p><strong>${esc(key)}</strong>: <span class="${esc(key)}">${esc(value)}</span></p>`).join(''));
    },
    ttl: {
      AccessToken: seconds(env.ACCESS_TOKEN_TTL, 3600), IdToken: seconds(env.ID_TOKEN_TTL, 3600),
      RefreshToken: seconds(env.REFRESH_TOKEN_TTL, 14 * 86400), AuthorizationCode: 60,
      Interaction: 3600, Session: 14 * 86400, Grant: 14 * 86400,
    },
  };
}

async function readForm(req) {
  let body = '';
  for await (const chunk of req) if ((body += chunk).length > 65536) throw new Error('form too large');
  return Object.fromEntries(new URLSearchParams(body));
}

// The login pages: GET shows the form, POST checks the password and resumes the authorization.
function interactions(provider, mount) {
  return async (ctx, next) => {
    const match = /^\/interaction\/([\w-]+)$/.exec(ctx.path);
    if (!match || !['GET', 'POST'].includes(ctx.method)) return next();
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    if (details.uid !== match[1]) ctx.throw(400, 'interaction mismatch');
    ctx.set('Cache-Control', 'no-store');
    const action = `${mount}/interaction/${details.uid}`;
    // loadExistingGrant grants everything asked for, so consent is never prompted for.
    if (details.prompt.name !== 'login') ctx.throw(400, `unexpected prompt ${details.prompt.name}`);
    if (ctx.method === 'GET') {
      ctx.type = 'html';
      ctx.body = loginPage(action, details.params.login_hint || '');
      return undefined;
    }
    const form = await readForm(ctx.req);
    const login = form.username ?? form.login ?? '';
    const user = findUser(login);
    const ok = user && crypto.timingSafeEqual(
      crypto.createHash('sha256').update(String(form.password ?? '')).digest(),
      crypto.createHash('sha256').update(String(user.password)).digest(),
    );
    if (!ok) {
      ctx.type = 'html';
      ctx.body = loginPage(action, login, 'Invalid Email Address and password.');
      return undefined;
    }
    const result = { login: { accountId: user.sub } };
    ctx.status = 303; // back to the authorization endpoint, which then redirects to the client
    ctx.redirect(await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false }));
    return undefined;
  };
}

const port = seconds(env.PROVIDER_PORT, 5556);
const server = http.createServer();
server.listen(port, '127.0.0.1', () => {
  const issuer = env.PROVIDER_ISSUER || `http://127.0.0.1:${server.address().port}`;
  const mount = new URL(issuer).pathname.replace(/\/$/, '');
  const provider = new Provider(issuer, configuration(mount));
  provider.use(interactions(provider, mount));
  provider.on('server_error', (ctx, err) => console.error('server_error', err));
  const callback = provider.callback();
  server.on('request', (req, res) => {
    if (mount) { // serve the issuer's path: oidc-provider reads the prefix from req.originalUrl
      if (!req.url.startsWith(`${mount}/`)) return void res.writeHead(404).end();
      [req.originalUrl, req.url] = [req.url, req.url.slice(mount.length)];
    }
    return callback(req, res);
  });
  console.error(`listening ${issuer}`);
});
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
