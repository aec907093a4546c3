/**
 * A self-signed EC certificate for localhost / 127.0.0.1, valid one day, made with the openssl CLI
 * for tests that need TLS: the files' paths (`<dir>/<name>-cert.pem`, `<dir>/<name>-key.pem`).
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';

export async function makeSelfSignedCert(dir: string, name: string): Promise<{ cert: string; key: string }> {
  const cert = path.join(dir, `${name}-cert.pem`);
  const key = path.join(dir, `${name}-key.pem`);
  await promisify(execFile)('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    key,
    '-out',
    cert,
    '-days',
    '1',
    '-subj',
    `/CN=${name}`,
    '-addext',
    'subjectAltName=DNS:localhost,IP:127.0.0.1',
  ]);
  return { cert, key };
}
