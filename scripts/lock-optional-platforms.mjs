#!/usr/bin/env node
/* global URL, console */
/**
 * Records other platforms' optional native packages in package-lock.json.
 * npm leaves them out when the registry it talks to does not serve them (this machine's mirror
 * answers 404 for darwin/win32 builds), and then `npm ci` refuses the lock as out of sync.
 * Each missing optional dependency gets a lock entry with its version, marked optional, with the
 * os/cpu read from its name, so npm skips it on every other platform. Run after `npm install`.
 */
import { readFileSync, writeFileSync } from 'node:fs';

const file = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(file, 'utf8'));
const pkgs = lock.packages;
const OS = ['darwin', 'linux', 'win32', 'freebsd', 'android', 'openharmony', 'sunos', 'aix', 'openbsd', 'netbsd'];
const CPU = ['arm64', 'x64', 'ia32', 'arm', 'loong64', 'ppc64', 'riscv64', 's390x', 'wasm32'];
let added = 0;
for (const [path, meta] of Object.entries(pkgs)) {
  for (const [name, version] of Object.entries(meta.optionalDependencies ?? {})) {
    const base = path === '' ? 'node_modules' : `${path}/node_modules`;
    if (pkgs[`${base}/${name}`] || pkgs[`node_modules/${name}`]) continue;
    const parts = name.split('/').pop().split('-');
    const entry = { version, optional: true };
    const os = parts.find((p) => OS.includes(p));
    const cpu = parts.find((p) => CPU.includes(p) || p.startsWith('arm'));
    if (os) entry.os = [os];
    if (cpu) entry.cpu = [cpu === 'armv7' || cpu.startsWith('arm') && cpu !== 'arm64' ? 'arm' : cpu];
    pkgs[`node_modules/${name}`] = entry;
    added++;
  }
}
lock.packages = Object.fromEntries(Object.entries(pkgs).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a.localeCompare(b))));
writeFileSync(file, JSON.stringify(lock, null, 2) + '\n');
console.log(`added ${added} optional platform entries`);
