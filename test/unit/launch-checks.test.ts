import { launchRejection } from '../../src/jobs/launch-checks.js';
import { compareVersions, formatFirmwareVersion } from '../../src/protocol/index.js';

const MPPT = 0xa058;
const CERBO = 0xc00a;
const MULTIPLUS = 0x2780;
const strict = { allowDowngrade: false, allowSameVersion: false };

const image = (version: string, productIds: number[]) => ({ version, productIds, name: 'image' });

describe('launch checks: product fit and version order, with real Victron versions', () => {
  // [what, device product, device version, image version, image products, expected code]
  test.each([
    ['MPPT v1.59 → v1.67', MPPT, 'v1.59', 'v1.67', [MPPT], null],
    ['MPPT already on v1.67', MPPT, 'v1.67', 'v1.67', [MPPT], 'not-newer'],
    ['MPPT on v1.67 offered v1.64 (downgrade)', MPPT, 'v1.67', 'v1.64', [MPPT], 'not-newer'],
    [
      'MPPT beta v1.67~03 → release v1.67 (a release follows its betas)',
      MPPT,
      'v1.67~03',
      'v1.67',
      [MPPT],
      null,
    ],
    ['MPPT release v1.67 offered beta v1.67~03', MPPT, 'v1.67', 'v1.67~03', [MPPT], 'not-newer'],
    ['Cerbo v3.70~33 → v3.70', CERBO, 'v3.70~33', 'v3.70', [CERBO], null],
    ['Cerbo v3.70~4 → v3.70~33 (beta numbers are numbers)', CERBO, 'v3.70~4', 'v3.70~33', [CERBO], null],
    ['Cerbo v3.72 offered v3.80~12 beta', CERBO, 'v3.72', 'v3.80~12', [CERBO], null],
    ['Cerbo v3.72 offered v3.70~33', CERBO, 'v3.72', 'v3.70~33', [CERBO], 'not-newer'],
    ['Cerbo v3.09 → v3.10 (two-digit minors)', CERBO, 'v3.09', 'v3.10', [CERBO], null],
    ['MultiPlus-II v504 → v510', MULTIPLUS, 'v504', 'v510', [MULTIPLUS], null],
    ['MultiPlus-II v510 offered v504', MULTIPLUS, 'v510', 'v504', [MULTIPLUS], 'not-newer'],
    ['MPPT image on a MultiPlus-II', MULTIPLUS, 'v504', 'v1.67', [MPPT], 'incompatible'],
    ['GX image on a Venus GX it does not list', 0xc002, 'v3.60', 'v3.72', [CERBO], 'incompatible'],
    ['unknown product', null, 'v1.59', 'v1.67', [MPPT], 'incompatible'],
    ['unknown installed version: preflight decides', MPPT, null, 'v1.67', [MPPT], null],
  ] as const)('%s', (_what, productId, version, imageVersion, products, expected) => {
    const r = launchRejection({ productId, version }, image(imageVersion, [...products]), strict);
    expect(r?.code ?? null).toBe(expected);
    if (r) expect(r.message).toMatch(/\S/);
  });

  test('allowSameVersion and allowDowngrade lift exactly their case', () => {
    const same = { productId: MPPT, version: 'v1.67' };
    const newer = { productId: MPPT, version: 'v1.68' };
    const img = image('v1.67', [MPPT]);
    expect(launchRejection(same, img, { allowDowngrade: false, allowSameVersion: true })).toBeNull();
    expect(launchRejection(newer, img, { allowDowngrade: false, allowSameVersion: true })?.code).toBe(
      'not-newer',
    );
    expect(launchRejection(newer, img, { allowDowngrade: true, allowSameVersion: false })).toBeNull();
    expect(launchRejection(same, img, { allowDowngrade: true, allowSameVersion: false })?.code).toBe(
      'not-newer',
    );
    expect(
      launchRejection({ productId: MULTIPLUS, version: 'v504' }, img, {
        allowDowngrade: true,
        allowSameVersion: true,
      })?.code,
    ).toBe('incompatible');
  });

  test('raw /FirmwareVersion values decode and order the way the devices mean them', () => {
    // VE.Direct 3-byte values: 0x0157_03 is beta 3 of v1.57, 0x0157_FF the release; 0x158 the next release.
    const decoded = [0x158, 0x0157ff, 0x015703, 0x015601].map((raw) =>
      formatFirmwareVersion('vedirect', raw)!,
    );
    expect(decoded).toEqual(['v1.58', 'v1.57', 'v1.57~03', 'v1.56~01']);
    expect([...decoded].sort(compareVersions)).toEqual(['v1.56~01', 'v1.57~03', 'v1.57', 'v1.58']);
    // VE.Bus: 1284 = 0x504 → v504, 1296 = 0x510 → v510.
    expect(
      compareVersions(formatFirmwareVersion('vebus', 1284)!, formatFirmwareVersion('vebus', 1296)!),
    ).toBeLessThan(0);
    // 343 = 0x157 (v1.57) is older than 1046 = 0x416 (v4.16): hex, not decimal, is what orders them.
    expect(
      compareVersions(formatFirmwareVersion('vedirect', 343)!, formatFirmwareVersion('vedirect', 1046)!),
    ).toBeLessThan(0);
  });
});
