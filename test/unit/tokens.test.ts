import { createHmac } from 'node:crypto';
import { TokenSigner } from '../../src/auth/tokens.js';

const SECRET = 'unit-test-signing-secret-0123456789abcdef';
const SHA = 'ab'.repeat(32);
const HOUR = 3_600_000;

/** Tokens signed by the previous implementation (jose 6, WebCrypto), valid until 2100: a rolling upgrade must accept them. */
const JOSE_DOWNLOAD_TOKEN =
  'eyJhbGciOiJIUzI1NiJ9.eyJzaGEiOiJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiIiwiZWlkIjoiajEuYzBhOGZmMDFfdHR5TzEiLCJpc3MiOiJmbGVldGZsYXNoIiwiYXVkIjoiZmlybXdhcmUiLCJleHAiOjQxMDI0NDQ4MDB9.dt8nu1-gbzrH7NEZAk-fbyHZG-1crOO23b_ObKZwrFk';
const JOSE_BROWSER_TOKEN =
  'eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoidmlld2VyIiwiam9icyI6WyJqMSJdLCJpc3MiOiJmbGVldGZsYXNoIiwiYXVkIjoibXF0dCIsInN1YiI6ImFsaWNlIiwiaWF0IjoxNzY0ODkyODAwLCJleHAiOjQxMDI0NDQ4MDB9.ioJctyyRgHPVzX7aA44-1ha2ZBNEXIdINl2xw1M-7MA';

/** A JWT signed with `secret` over any header and payload, to build tokens the signer never would. */
function forge(header: object, payload: object, secret = SECRET): string {
  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

const future = () => Math.floor(Date.now() / 1000) + 3600;

describe('TokenSigner', () => {
  const tokens = new TokenSigner(SECRET);

  it('round-trips a download token bound to one image', () => {
    const before = Date.now();
    const token = tokens.downloadToken(SHA, 'j1.dev', HOUR);
    const claims = tokens.verifyDownloadToken(token, SHA);
    expect(claims).toMatchObject({ sha256: SHA, executionId: 'j1.dev' });
    expect(claims!.expiresAt).toBeGreaterThan(before + HOUR - 2000);
    expect(claims!.expiresAt).toBeLessThanOrEqual(Date.now() + HOUR);
    expect(tokens.verifyDownloadToken(token, 'cd'.repeat(32))).toBeNull();
  });

  it('round-trips a browser token', () => {
    const { token, expiresAt } = tokens.browserToken('alice', 'operator', ['j1', 'j2'], HOUR);
    expect(tokens.verifyBrowserToken(token)).toEqual({ subject: 'alice', role: 'operator', jobs: ['j1', 'j2'], expiresAt });
    expect(tokens.verifyBrowserToken(tokens.browserToken('bob', 'viewer', '*', HOUR).token)).toMatchObject({ jobs: '*' });
  });

  it('accepts tokens signed by the previous implementation (jose)', () => {
    expect(tokens.verifyDownloadToken(JOSE_DOWNLOAD_TOKEN, SHA)).toEqual({
      sha256: SHA,
      executionId: 'j1.c0a8ff01_ttyO1',
      expiresAt: 4_102_444_800_000,
    });
    expect(tokens.verifyBrowserToken(JOSE_BROWSER_TOKEN)).toEqual({
      subject: 'alice',
      role: 'viewer',
      jobs: ['j1'],
      expiresAt: 4_102_444_800_000,
    });
  });

  it('refuses expired, forged, foreign and tampered tokens', () => {
    expect(tokens.verifyDownloadToken(tokens.downloadToken(SHA, 'j1.dev', -60_000), SHA)).toBeNull();
    expect(tokens.verifyBrowserToken(tokens.browserToken('alice', 'viewer', '*', -5000).token)).toBeNull();
    const foreign = new TokenSigner('another-signing-secret-0123456789abcdef');
    expect(tokens.verifyDownloadToken(foreign.downloadToken(SHA, 'j1.dev', HOUR), SHA)).toBeNull();
    expect(tokens.verifyBrowserToken(foreign.browserToken('alice', 'viewer', '*', HOUR).token)).toBeNull();
    const [h, p, s] = tokens.downloadToken(SHA, 'j1.dev', HOUR).split('.');
    const otherPayload = Buffer.from(JSON.stringify({ sha: SHA, eid: 'j1.other', iss: 'fleetflash', aud: 'firmware', exp: future() })).toString('base64url');
    expect(tokens.verifyDownloadToken(`${h}.${otherPayload}.${s}`, SHA)).toBeNull();
    expect(tokens.verifyDownloadToken(`${h}.${p}.`, SHA)).toBeNull();
    for (const junk of ['', 'x', 'a.b.c', '....', JOSE_DOWNLOAD_TOKEN.slice(0, -2)]) {
      expect(tokens.verifyDownloadToken(junk, SHA)).toBeNull();
      expect(tokens.verifyBrowserToken(junk)).toBeNull();
    }
  });

  it('keeps the two kinds apart: a download token is no MQTT password and the reverse', () => {
    expect(tokens.verifyBrowserToken(tokens.downloadToken(SHA, 'j1.dev', HOUR))).toBeNull();
    expect(tokens.verifyDownloadToken(tokens.browserToken('alice', 'viewer', '*', HOUR).token, SHA)).toBeNull();
  });

  it('refuses correctly signed tokens that break the rules: alg none, other algorithm, other issuer, missing claims, bad values', () => {
    const download = { sha: SHA, eid: 'j1.dev', iss: 'fleetflash', aud: 'firmware', exp: future() };
    const browser = { role: 'viewer', jobs: '*', sub: 'alice', iss: 'fleetflash', aud: 'mqtt', exp: future() };
    // The baseline passes, so each refusal below is down to the one thing changed.
    expect(tokens.verifyDownloadToken(forge({ alg: 'HS256' }, download), SHA)).not.toBeNull();
    expect(tokens.verifyBrowserToken(forge({ alg: 'HS256' }, browser))).not.toBeNull();

    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    expect(tokens.verifyDownloadToken(`${b64({ alg: 'none' })}.${b64(download)}.`, SHA)).toBeNull();
    expect(tokens.verifyDownloadToken(forge({ alg: 'HS512' }, download), SHA)).toBeNull();
    expect(tokens.verifyDownloadToken(forge({ alg: 'HS256' }, { ...download, iss: 'someone' }), SHA)).toBeNull();
    expect(tokens.verifyDownloadToken(forge({ alg: 'HS256' }, { ...download, exp: undefined }), SHA)).toBeNull();
    expect(tokens.verifyDownloadToken(forge({ alg: 'HS256' }, { ...download, eid: 7 }), SHA)).toBeNull();
    expect(tokens.verifyBrowserToken(forge({ alg: 'HS256' }, { ...browser, sub: undefined }))).toBeNull();
    expect(tokens.verifyBrowserToken(forge({ alg: 'HS256' }, { ...browser, role: 'admin' }))).toBeNull();
    expect(tokens.verifyBrowserToken(forge({ alg: 'HS256' }, { ...browser, jobs: ['j1', 2] }))).toBeNull();
    expect(tokens.verifyBrowserToken(forge({ alg: 'HS256' }, { ...browser, exp: undefined }))).toBeNull();
  });
});
