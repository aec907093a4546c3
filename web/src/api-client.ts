/**
 * The REST API as typed calls. Every request carries the bearer token; an error answer
 * (`{"error": {"code", "message", "details"?}}`) becomes an {@link ApiError} with that code, and a
 * 401 also tells the app to sign out.
 */
import type {
  DeviceRecord,
  ExecutionRecord,
  ExecutionTimeouts,
  FirmwareRecord,
  HistoryEntry,
  JobRecord,
} from '../../src/protocol/index.js';
import type { EventPage } from './job-log-feed.js';

/** `GET /api/me`. */
export interface Me {
  name: string;
  role: 'viewer' | 'operator';
}

/** `POST /api/mqtt-credentials`. */
export interface MqttCredentials {
  url: string;
  username: string;
  password: string;
  /** ISO time after which the broker closes the connection. */
  expiresAt: string;
  /** The broker accepts only client ids that start with this. */
  clientIdPrefix?: string;
  /**
   * The server's clock when it answered (epoch ms, from the `Date` header; added by the client):
   * `expiresAt` is server time, and a browser clock minutes off would otherwise renew too late or
   * all the time.
   */
  serverTime?: number;
}

/** Body of `POST /api/jobs`. */
export interface LaunchRequest {
  firmwareId: string;
  devices: string[];
  timeouts?: Partial<ExecutionTimeouts>;
}

/** Metadata of `POST /api/firmware`. */
export interface FirmwareUploadMeta {
  version: string;
  /** Comma-separated hex product ids. */
  products: string;
  name?: string;
  notes?: string;
}

/** `POST /api/jobs/:id/abort`. */
export interface AbortResult {
  job: JobRecord;
  canceled: number;
  inFlight: number;
}

/** An error answer of the API (or a network failure, with code `network`). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** Typed access to `/api`. */
export class ApiClient {
  /**
   * @param token the operator's bearer token
   * @param onUnauthorized called when the API answers 401: the token was revoked or is wrong
   */
  constructor(
    private readonly token: string,
    private readonly onUnauthorized: () => void = () => {},
  ) {}

  /** Who the token belongs to. */
  me(): Promise<Me> {
    return this.#json<Me>('GET', '/api/me');
  }

  /** The whole inventory (the fleet view filters in the page). */
  async devices(): Promise<DeviceRecord[]> {
    return (await this.#json<{ devices: DeviceRecord[] }>('GET', '/api/devices')).devices;
  }

  /** One device with its update history. */
  device(id: string): Promise<{ device: DeviceRecord; history: HistoryEntry[] }> {
    return this.#json('GET', `/api/devices/${encodeURIComponent(id)}`);
  }

  /** Every firmware image. */
  async firmware(): Promise<FirmwareRecord[]> {
    return (await this.#json<{ firmware: FirmwareRecord[] }>('GET', '/api/firmware')).firmware;
  }

  /** The newest jobs first. */
  async jobs(limit = 100): Promise<JobRecord[]> {
    return (await this.#json<{ jobs: JobRecord[] }>('GET', `/api/jobs?limit=${limit}`)).jobs;
  }

  /** One job with all its executions. */
  job(id: string): Promise<{ job: JobRecord; executions: ExecutionRecord[] }> {
    return this.#json('GET', `/api/jobs/${encodeURIComponent(id)}`);
  }

  /** Log lines of a job with seq > `after`, at most `limit`. */
  jobEvents(id: string, after: number, limit: number): Promise<EventPage> {
    return this.#json('GET', `/api/jobs/${encodeURIComponent(id)}/events?after=${after}&limit=${limit}`);
  }

  /** Launches a job (202); the job's live state then comes over MQTT. */
  async launch(request: LaunchRequest): Promise<JobRecord> {
    return (await this.#json<{ job: JobRecord }>('POST', '/api/jobs', request)).job;
  }

  /** Aborts a job: cancels what has not passed the point of no return. */
  abort(id: string): Promise<AbortResult> {
    return this.#json('POST', `/api/jobs/${encodeURIComponent(id)}/abort`);
  }

  /** Fresh short-lived read-only credentials for the broker's WebSocket. */
  async mqttCredentials(): Promise<MqttCredentials> {
    const { data, res } = await this.#send<MqttCredentials>('POST', '/api/mqtt-credentials');
    const serverTime = Date.parse(res.headers.get('date') ?? '');
    return Number.isFinite(serverTime) ? { ...data, serverTime } : data;
  }

  /**
   * Uploads an image as the raw body. XMLHttpRequest rather than fetch, because only XHR reports
   * upload progress in browsers today.
   */
  uploadFirmware(
    file: Blob,
    meta: FirmwareUploadMeta,
    onProgress: (loaded: number, total: number) => void,
  ): Promise<FirmwareRecord> {
    const query = new URLSearchParams({ version: meta.version, products: meta.products });
    if (meta.name) query.set('name', meta.name);
    if (meta.notes) query.set('notes', meta.notes);
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open('POST', `/api/firmware?${query.toString()}`);
      xhr.setRequestHeader('Authorization', `Bearer ${this.token}`);
      xhr.setRequestHeader('Content-Type', 'application/octet-stream');
      xhr.upload.addEventListener('progress', (ev) => {
        if (ev.lengthComputable) onProgress(ev.loaded, ev.total);
      });
      xhr.addEventListener('load', () => {
        const body = parseJson(xhr.responseText);
        if (xhr.status >= 200 && xhr.status < 300 && isObject(body) && isObject(body.firmware)) {
          resolve(body.firmware as unknown as FirmwareRecord);
        } else {
          reject(this.#error(xhr.status, body));
        }
      });
      xhr.addEventListener('error', () =>
        reject(new ApiError(0, 'network', 'the upload failed: no answer from the server')),
      );
      xhr.addEventListener('abort', () => reject(new ApiError(0, 'aborted', 'the upload was canceled')));
      xhr.send(file);
    });
  }

  async #json<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    return (await this.#send<T>(method, path, body)).data;
  }

  async #send<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ data: T; res: Response }> {
    const headers: Record<string, string> = {
      Authorization: `Bearer ${this.token}`,
      Accept: 'application/json',
    };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
      });
    } catch {
      throw new ApiError(0, 'network', 'the server did not answer; check the connection');
    }
    const parsed = parseJson(await res.text());
    if (!res.ok) throw this.#error(res.status, parsed);
    return { data: parsed as T, res };
  }

  #error(status: number, body: unknown): ApiError {
    if (status === 401) this.onUnauthorized();
    const e = isObject(body) && isObject(body.error) ? body.error : null;
    const code = e && typeof e.code === 'string' ? e.code : `http_${status}`;
    const message = e && typeof e.message === 'string' ? e.message : `the server answered ${status}`;
    return new ApiError(status, code, message, e?.details);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parseJson(text: string): unknown {
  try {
    return text ? (JSON.parse(text) as unknown) : null;
  } catch {
    return null;
  }
}
