/** Operator bearer tokens: constant-time lookup, never logged. */
import { timingSafeEqual } from 'node:crypto';
import type { ApiToken, OperatorRole } from '../config.js';
import { secretDigest } from './secret-digest.js';

export interface Operator {
  /** Non-secret name for logs and the audit trail. */
  name: string;
  role: OperatorRole;
}

export class OperatorAuth {
  private readonly entries: { digest: Buffer; operator: Operator }[];

  constructor(tokens: readonly ApiToken[]) {
    this.entries = tokens.map((t) => ({ digest: secretDigest(t.token), operator: { name: t.name, role: t.role } }));
  }

  /** The operator owning `token`, or null. Compares digests in constant time against every entry. */
  resolve(token: string): Operator | null {
    const d = secretDigest(token);
    let found: Operator | null = null;
    for (const e of this.entries) {
      if (timingSafeEqual(e.digest, d)) found = e.operator;
    }
    return found;
  }
}

/** Whether `role` may do what `needed` allows. */
export function roleAllows(role: OperatorRole, needed: OperatorRole): boolean {
  return needed === 'viewer' || role === 'operator';
}
