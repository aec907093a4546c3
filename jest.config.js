/** Jest runs the TypeScript sources directly as ESM (aedes 1.x is ESM-only). */
export default {
  preset: 'ts-jest/presets/default-esm',
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.json' }],
  },
  testTimeout: 30000,
  // One test file at a time: the integration tests run real brokers, workers, simulated fleets and
  // several OS processes, and on a 2-core machine two of them side by side make each other time out.
  maxWorkers: 1,
};
