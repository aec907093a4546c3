/**
 * The listener of `BROKER_AUTH_PORT`: the HTTP calls an external broker makes to authenticate and
 * authorize its clients by fleetflash's rules (auth/broker-auth-hook.ts), in two dialects:
 *
 * - EMQX 5 (HTTP authenticator and HTTP authorizer): `POST /emqx/authn`, `POST /emqx/authz`; always
 *   200 with `{"result": "allow" | "deny"}` (EMQX takes any other status for "ignore").
 * - mosquitto-go-auth's `http` backend: `POST /mosquitto/user`, `/mosquitto/superuser`,
 *   `/mosquitto/acl`; 200 allowed, 403 refused, with `{"Ok", "Error"}` (its `status` and `json`
 *   response modes), parameters as JSON or form fields (its params modes).
 *
 * A malformed request is a 400 with the usual error body. Not for the public network: bind it to the
 * broker's side only; with `BROKER_AUTH_TOKEN` set every call must also carry `Authorization: Bearer
 * <token>` (EMQX can send headers; mosquitto-go-auth cannot).
 */
import http from 'node:http';
import express, { type Request, type Response } from 'express';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { BrokerAction, BrokerAuthHook, Decision } from '../auth/broker-auth-hook.js';
import { matchesDigest, secretDigest } from '../auth/secret-digest.js';
import type { Principal } from '../../broker/acl.js';
import { UnauthorizedError } from '../errors.js';
import { listenHttp, type HttpListener } from '../net/http-listener.js';
import { bearerToken } from './auth-middleware.js';
import { errorHandler, notFoundHandler } from './error-handler.js';
import { parseInput } from './validate.js';

const field = z.string().max(4096);
const connectBody = z.object({ username: field, password: field, clientid: field });
const emqxAccessBody = z.object({
  username: field,
  clientid: field,
  action: z.enum(['publish', 'subscribe']),
  topic: field,
  retain: z.union([z.boolean(), z.enum(['true', 'false'])]).optional(),
});
const goAuthSuperuserBody = z.object({ username: field });
const goAuthAclBody = z.object({
  username: field,
  clientid: field,
  topic: field,
  // 1 read (a delivery), 2 write (a publish), 3 both, 4 subscribe; a number in JSON, a string in a form.
  acc: z.union([z.literal([1, 2, 3, 4]), z.enum(['1', '2', '3', '4'])]).transform(Number),
});

export async function startBrokerAuthServer(options: {
  hook: BrokerAuthHook;
  port: number;
  host: string;
  /** Bearer token every call must carry; null: none (rely on where it listens). */
  token: string | null;
  logger: Logger;
}): Promise<HttpListener> {
  return listenHttp(http.createServer(brokerAuthApp(options)), options.port, options.host);
}

export function brokerAuthApp(options: { hook: BrokerAuthHook; token: string | null; logger: Logger }): express.Express {
  const { hook, logger } = options;
  const app = express();
  app.disable('x-powered-by');
  const expected = options.token === null ? null : secretDigest(options.token);
  app.use((req, _res, next) => {
    if (expected === null) return next();
    const given = bearerToken(req.get('authorization') ?? '');
    next(given !== null && matchesDigest(expected, given) ? undefined : new UnauthorizedError('the broker auth hook needs its bearer token'));
  });
  app.use(express.json({ limit: '16kb' }), express.urlencoded({ extended: false, limit: '16kb' }));

  /** One log line per refusal (an allowed call is the normal case: debug). */
  const logged = (what: string, fields: Record<string, unknown>, d: Decision<Principal>): Decision<Principal> => {
    if (d.ok) logger.debug({ ...fields, kind: d.value.kind }, `${what} allowed`);
    else logger.warn({ ...fields, reason: d.reason }, `${what} refused`);
    return d;
  };
  const connect = async (req: Request) => {
    const b = parseInput(connectBody, req.body, 'body');
    const d = await hook.connect({ username: b.username, password: b.password, clientId: b.clientid });
    return logged('broker auth hook: connect', { clientId: b.clientid, username: b.username }, d);
  };
  const access = async (username: string, clientId: string, action: BrokerAction, topic: string, retain = false) =>
    logged(`broker auth hook: ${action}`, { clientId, username, topic }, await hook.access({ username, clientId, action, topic, retain }));

  // EMQX: 200 and a result, always.
  app.post('/emqx/authn', async (req, res) => {
    const d = await connect(req);
    if (!d.ok) return void res.json({ result: 'deny' });
    const p = d.value;
    res.json({
      result: 'allow',
      is_superuser: p.kind === 'service',
      ...(p.kind === 'browser' ? { expire_at: Math.floor(p.expiresAt / 1000) } : {}),
    });
  });
  app.post('/emqx/authz', async (req, res) => {
    const b = parseInput(emqxAccessBody, req.body, 'body');
    const d = await access(b.username, b.clientid, b.action, b.topic, b.retain === true || b.retain === 'true');
    res.json({ result: d.ok ? 'allow' : 'deny' });
  });

  // mosquitto-go-auth: the status says it.
  const answer = (res: Response, ok: boolean, error = '') => void res.status(ok ? 200 : 403).json({ Ok: ok, Error: error });
  const answerDecision = (res: Response, d: Decision<Principal>) => answer(res, d.ok, d.ok ? '' : d.reason);
  app.post('/mosquitto/user', async (req, res) => answerDecision(res, await connect(req)));
  app.post('/mosquitto/superuser', (req, res) => {
    const b = parseInput(goAuthSuperuserBody, req.body, 'body');
    // Asked before every ACL check; a no is the normal answer for all but the service account.
    const ok = hook.isSuperuser(b.username);
    answer(res, ok, ok ? '' : 'not a superuser');
  });
  app.post('/mosquitto/acl', async (req, res) => {
    const b = parseInput(goAuthAclBody, req.body, 'body');
    const receive = b.acc === 1 || b.acc === 3 ? await access(b.username, b.clientid, 'receive', b.topic) : null;
    if (receive && !receive.ok) return answerDecision(res, receive);
    const publish = b.acc === 2 || b.acc === 3 ? await access(b.username, b.clientid, 'publish', b.topic) : null;
    if (publish) return answerDecision(res, publish);
    answerDecision(res, receive ?? (await access(b.username, b.clientid, 'subscribe', b.topic)));
  });

  app.use(notFoundHandler());
  app.use(errorHandler(logger));
  return app;
}
