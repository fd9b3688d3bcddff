import { defineConfig } from '@playwright/test';
import type { Backend } from './marain';

// Debian's Chromium, never a downloaded browser (`scripts/setup.sh --test` installs it).
// Each test starts its own `marain serve` (marain.ts), so tests do not depend on
// each other and any one of them runs alone. The suite runs once per backend:
// project `sqlite`, and project `postgres` on the server `MARAIN_E2E_POSTGRES`
// names (`make test-e2e` starts a throw-away one).
// The background-networking flags stop it from flooding the closed network.
export default defineConfig<{ backend: Backend }>({
  testDir: './tests',
  fullyParallel: false,
  workers: 1,
  retries: 0,
  timeout: 60_000,
  expect: { timeout: 10_000 },
  reporter: [['list']],
  projects: [
    { name: 'sqlite', use: { backend: 'sqlite' } },
    { name: 'postgres', use: { backend: 'postgres' } },
  ],
  use: {
    trace: 'off',
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    },
  },
});
