// The dashboard's files are sent compressed, named by their content and kept by
// the browser: a first visit's files fit in 600 kB, and a second visit fetches
// the page and nothing the page is built from. Sizes, not times, so they hold
// on a busy machine; the figures under a throttled link are
// `make measure-dashboard`'s (end2end/measure/).
import { expect, test } from '../marain';
import { isAsset, recordWire, total } from '../wire';

test('a second visit transfers the page and none of its files', async ({ page, request, marain }) => {
  const first = await recordWire(page);
  await page.goto(marain.url);
  // Every file arrived before the form is sent (a request cut short by the
  // navigation would be fetched again, and counted twice).
  await page.waitForLoadState('networkidle');
  await page.getByLabel('User name').fill('admin');
  await page.getByLabel('Password').fill(marain.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.locator('.live.on')).toBeVisible();
  const firstVisit = first.stop();
  // The sign-in page fetched the files; the dashboard after it took them
  // from the cache.
  const assets = firstVisit.filter((f) => isAsset(f) && !f.fromCache);
  expect(assets.map((f) => new URL(f.url).pathname.split('.').pop()).sort()).toEqual(['css', 'js', 'wasm']);
  expect(firstVisit.filter(isAsset).filter((f) => f.fromCache)).toHaveLength(3);
  for (const asset of assets) {
    // Named after their content; brotli, which Chromium asks for.
    expect(new URL(asset.url).pathname).toMatch(/\/pkg\/marain\.[0-9a-f]{16}\.(js|wasm|css)$/);
    expect(asset.encoding).toBe('br');
  }
  // The size-optimised bundle (`make test` builds it with `cargo xtask build
  // --release-wasm`): what a first visit costs, headers included.
  const FIRST_VISIT_LIMIT = 600 * 1000;
  expect(
    total(assets),
    `the files of a first visit took ${total(assets)} bytes; the browser tests need the size-optimised wasm ` +
      '(cargo xtask build --release-wasm, as make test builds it)',
  ).toBeLessThanOrEqual(FIRST_VISIT_LIMIT);
  const wasm = assets.find((f) => f.url.endsWith('.wasm'))!;
  const head = await page.request.get(wasm.url, { headers: { 'Accept-Encoding': 'br' } });
  expect(head.headers()['cache-control']).toBe('public, max-age=31536000, immutable');
  expect(head.headers()['vary']).toBe('accept-encoding');

  // A second visit in the same browser: a new tab on the same address.
  const again = await page.context().newPage();
  const second = await recordWire(again);
  await again.goto(marain.url);
  await expect(again.locator('.live.on')).toBeVisible();
  const secondVisit = second.stop();
  const document = secondVisit.filter((f) => f.type === 'Document');
  expect(document).toHaveLength(1);
  expect(document[0].wire).toBeGreaterThan(0);
  expect(document[0].status).toBe(200);
  const secondAssets = secondVisit.filter(isAsset);
  expect(secondAssets.map((f) => f.fromCache)).toEqual([true, true, true]);
  expect(total(secondAssets)).toBe(0);
  console.log(
    `first visit ${total(firstVisit)} bytes on the wire (files ${total(assets)}), ` +
      `second ${total(secondVisit)} (files ${total(secondAssets)}, page ${document[0].wire})`,
  );

  // The page itself is checked each time and answered 304 while unchanged.
  const pageResponse = await request.get(`${marain.url}/login`);
  const etag = pageResponse.headers()['etag'];
  expect(pageResponse.headers()['cache-control']).toBe('private, no-cache');
  expect(etag).toMatch(/^"[0-9a-f]{32}"$/);
  const revalidated = await request.get(`${marain.url}/login`, { headers: { 'If-None-Match': etag } });
  expect(revalidated.status()).toBe(304);
  expect(revalidated.headers()['content-security-policy']).toBeUndefined();
});
