import { defineConfig } from '@playwright/test';

// Debian's Chromium, never a downloaded browser (see ../shared/TOOLCHAIN.md).
// The background-networking flags stop it from flooding the closed network.
export default defineConfig({
  testDir: './tests',
  globalSetup: './server.ts',
  fullyParallel: false,
  workers: 1,
  retries: 0,
  timeout: 60_000,
  expect: { timeout: 10_000 },
  reporter: [['list']],
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
