// The walking skeleton in a real browser: file edits on disk show up live in the
// open dashboard, and a BREAKING change is approved from it.
import { expect, test } from '@playwright/test';
import * as fs from 'node:fs';
import * as path from 'node:path';

const base = () => process.env.MARAIN_E2E_URL!;
const article = () => path.join(process.env.MARAIN_E2E_SITE!, 'schemas', 'article.schema.yaml');
const ARTICLE = 'schemas/article.schema.yaml';

test.describe.serial('hot reload from disk to dashboard', () => {
  test.beforeEach(async ({ page }) => {
    await page.goto(base());
    // Hydrated and subscribed to the SSE stream.
    await expect(page.locator('.live.on')).toBeVisible();
    // Marks this page load: if the page reloaded, the marker would be gone.
    await page.evaluate(() => ((window as any).__loaded_once = true));
  });

  test('the page lists the watched files in sync', async ({ page }) => {
    await expect(page.getByTestId('sync-status')).toHaveAttribute('data-in-sync', 'true');
    await expect(page.locator(`tr[data-file="${ARTICLE}"]`)).toContainText('in sync');
    await expect(page.locator('tr[data-file="schemas/user.schema.yaml"]')).toContainText('v1');
    fs.mkdirSync('screenshots', { recursive: true });
    await page.screenshot({ path: 'screenshots/overview.png', fullPage: true });
  });

  test('a SAFE edit is applied and shown without a reload', async ({ page }) => {
    fs.appendFileSync(article(), '  - id: subtitle\n    type: text\n    label: Subtitle\n');
    await expect(page.locator(`.history li[data-file="${ARTICLE}"][data-version="2"]`)).toBeVisible();
    await expect(page.getByTestId('feed')).toContainText('applied');
    await expect(page.getByTestId('change-card')).toHaveCount(0);
    expect(await page.evaluate(() => (window as any).__loaded_once)).toBe(true);
  });

  test('a BREAKING edit waits, is approved with confirmation, and lands in history', async ({ page, request }) => {
    // Real content, so that dropping `body` deletes data and is BREAKING.
    const created = await request.post(`${base()}/api/v1/entity/article`, {
      data: { id: 'a1', title: 'Hello', slug: 'hello', body: 'Lots of words' },
    });
    expect(created.status()).toBe(201);
    expect((await created.json()).body).toBe('Lots of words');

    const text = fs.readFileSync(article(), 'utf8');
    const without = text.replace('  - id: body\n    type: rich_text\n    label: Body\n', '');
    expect(without).not.toEqual(text);
    fs.writeFileSync(article(), without);

    const card = page.locator(`[data-testid="change-card"][data-file="${ARTICLE}"]`);
    await expect(card).toBeVisible();
    await expect(card).toHaveAttribute('data-severity', 'BREAKING');
    await expect(card.locator('.card-head .badge')).toHaveText(/BREAKING/);
    await expect(card).toContainText('- field article.body');
    await expect(card.locator('.hazards')).toContainText('1 values of `body` are deleted');
    await expect(card.locator('.dl-removed')).toHaveText([/- id: body/, /type: rich_text/, /label: Body/]);
    await expect(card.locator('.dl-added')).toHaveCount(0);
    await expect(card.getByTestId('sql')).toContainText('DROP COLUMN "body"');
    await expect(page.getByTestId('sync-status')).toHaveAttribute('data-in-sync', 'false');
    expect(await page.evaluate(() => (window as any).__loaded_once)).toBe(true);
    await page.screenshot({ path: 'screenshots/pending-breaking.png', fullPage: true });

    await card.getByRole('textbox', { name: 'Reason' }).fill('body moves to blocks');
    await card.getByLabel('Type article to confirm').fill('article');
    await card.getByRole('button', { name: `Approve change` }).click();

    await expect(page.getByTestId('change-card')).toHaveCount(0);
    const applied = page.locator(`.history li[data-file="${ARTICLE}"][data-version="3"]`);
    await expect(applied).toBeVisible();
    await expect(applied).toContainText('body moves to blocks');
    await expect(page.getByTestId('sync-status')).toHaveAttribute('data-in-sync', 'true');
    await page.screenshot({ path: 'screenshots/applied.png', fullPage: true });

    // The server agrees: in sync, and version 3 dropped the column.
    const status = await (await request.get(`${base()}/api/v1/hot-reload/status`)).json();
    expect(status.in_sync).toBe(true);
    expect(status.pending).toEqual([]);
    const history = await (await request.get(`${base()}/api/v1/hot-reload/history?file_path=${ARTICLE}`)).json();
    expect(history.versions.map((v: any) => v.version)).toEqual([3, 2, 1]);
    expect(history.versions[0].severity).toBe('BREAKING');
    expect(history.versions[0].actor).toBe('dashboard');
    expect(history.versions[0].sql.join('\n')).toContain('ALTER TABLE "content_article" DROP COLUMN "body"');
    // The content API serves the article without the dropped field.
    const stored = await (await request.get(`${base()}/api/v1/entity/article/a1`)).json();
    expect(stored.title).toBe('Hello');
    expect(stored).not.toHaveProperty('body');
  });

  test('rolling back to the previous version brings the dropped data back', async ({ page, request }) => {
    await page.getByRole('button', { name: `Roll back ${ARTICLE} to version 2` }).click();
    const card = page.locator(`[data-testid="change-card"][data-file="${ARTICLE}"]`);
    await expect(card).toBeVisible();
    await expect(card).toContainText('+ field article.body');
    await expect(card.locator('.tag')).toHaveText('rollback to v2');
    await expect(card.getByTestId('sql')).toContainText('UPDATE "content_article" SET "body"');
    await page.screenshot({ path: 'screenshots/rollback-pending.png', fullPage: true });
    await card.getByRole('button', { name: 'Approve change' }).click();
    await expect(page.locator(`.history li[data-file="${ARTICLE}"][data-version="4"]`)).toBeVisible();
    await expect(page.getByTestId('sync-status')).toHaveAttribute('data-in-sync', 'true');

    const stored = await (await request.get(`${base()}/api/v1/entity/article/a1`)).json();
    expect(stored.body).toBe('Lots of words');
    expect(fs.readFileSync(article(), 'utf8')).toContain('  - id: body\n');
  });
});
