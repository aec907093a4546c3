/**
 * The operator's bearer token for this tab. Kept in sessionStorage (gone when the tab closes, never
 * shared with other tabs or sent anywhere but our own API). The demo prints a link with
 * `#token=…`; the token is taken from there once and removed from the address bar at once, so it
 * does not linger in the history or get copied along with the URL.
 */

const STORAGE_KEY = 'fleetflash.token';

/** Reads `#token=…` if present (storing it and cleaning the URL), else the stored token. */
export function loadToken(): string | null {
  const fromHash = /^#token=([^&]+)/.exec(location.hash);
  if (fromHash) {
    const token = decodeURIComponent(fromHash[1]);
    saveToken(token);
    history.replaceState(null, '', `${location.pathname}${location.search}#/`);
    return token;
  }
  return sessionStorage.getItem(STORAGE_KEY);
}

/** Remembers the token for this tab. */
export function saveToken(token: string): void {
  sessionStorage.setItem(STORAGE_KEY, token);
}

/** Forgets the token (sign out, or the API refused it). */
export function clearToken(): void {
  sessionStorage.removeItem(STORAGE_KEY);
}
