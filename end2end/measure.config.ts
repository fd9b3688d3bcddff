import base from './playwright.config';
import { defineConfig } from '@playwright/test';

// `make measure-dashboard`: the first and second visit of the release build,
// over a throttled link, printed (end2end/measure/). Not part of `make test`:
// it needs the release build, and its times are figures, not assertions.
export default defineConfig({
  ...base,
  testDir: './measure',
  projects: [{ name: 'sqlite', use: { backend: 'sqlite' } }],
  timeout: 120_000,
});
