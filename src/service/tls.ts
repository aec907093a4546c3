/**
 * TLS material for the service: the certificate and key its HTTPS and MQTTS listeners present, and
 * the TLS options of its own MQTT client. Files are read once at start-up; a file that cannot be
 * read, or a key that does not match the certificate, stops the start with a ConfigError naming the
 * variable.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { ConnectionOptions, PeerCertificate } from 'node:tls';
import type { TlsFiles } from '../config.js';
import { ConfigError } from '../errors.js';
import type { IClientOptions } from '../mqtt/connect.js';

/** What the listeners present. */
export interface ServerTls {
  key: Buffer;
  /** PEM chain, leaf first. */
  cert: Buffer;
  /** SHA-256 fingerprint of the leaf (`AB:CD:…`), to pin our own listener. */
  fingerprint256: string;
  /** The leaf signed itself: nothing but the certificate itself can vouch for it. */
  selfSigned: boolean;
}

async function read(variable: string, file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    throw new ConfigError(variable, `cannot read ${file}: ${(err as Error).message}`);
  }
}

/** Reads and checks the certificate and key; null when TLS is not configured. */
export async function loadServerTls(files: TlsFiles | null): Promise<ServerTls | null> {
  if (!files) return null;
  const [cert, key] = await Promise.all([
    read('TLS_CERT_FILE', files.certFile),
    read('TLS_KEY_FILE', files.keyFile),
  ]);
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(cert);
  } catch (err) {
    throw new ConfigError('TLS_CERT_FILE', `is not a PEM certificate: ${(err as Error).message}`);
  }
  let matches: boolean;
  try {
    matches = leaf.checkPrivateKey(createPrivateKey(key));
  } catch (err) {
    throw new ConfigError('TLS_KEY_FILE', `is not a PEM private key: ${(err as Error).message}`);
  }
  if (!matches) throw new ConfigError('TLS_KEY_FILE', 'does not belong to the certificate in TLS_CERT_FILE');
  return { key, cert, fingerprint256: leaf.fingerprint256, selfSigned: leaf.checkIssued(leaf) };
}

/** The CA file's contents, or null when none is configured. */
export async function loadCa(caFile: string | null): Promise<Buffer | null> {
  return caFile ? read('TLS_CA_FILE', caFile) : null;
}

/**
 * TLS options of the service's own MQTT client.
 * - Our own MQTTS listener on loopback: the chain is verified as usual (against TLS_CA_FILE, or the
 *   certificate itself when it is self-signed), and instead of the host name, which a certificate
 *   for the public name never matches on 127.0.0.1, the peer must present exactly our certificate.
 * - Any other `mqtts://`/`wss://` URL: the usual checks, with TLS_CA_FILE as the trusted CA if set.
 */
export function serviceClientTls(
  ca: Buffer | null,
  ownListener: ServerTls | null,
): Partial<IClientOptions> & Pick<ConnectionOptions, 'checkServerIdentity'> {
  if (ownListener) {
    const trusted = ca ?? (ownListener.selfSigned ? ownListener.cert : undefined);
    return {
      ...(trusted ? { ca: trusted } : {}),
      rejectUnauthorized: true,
      checkServerIdentity: (_host: string, cert: PeerCertificate) =>
        cert.fingerprint256 === ownListener.fingerprint256
          ? undefined
          : new Error('the MQTTS listener presented a certificate other than TLS_CERT_FILE'),
    };
  }
  // mqtt.js hands `ca` to the WebSocket transport too.
  return ca ? { ca, rejectUnauthorized: true } : {};
}
