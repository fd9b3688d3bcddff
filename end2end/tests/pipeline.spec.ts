// The dashboard in a real browser: sign-in, file edits on disk showing up live,
// a BREAKING change approved from it, rollback, roles and the Origin check.
import { expect, Page, test } from '@playwright/test';
import * as fs from 'node:fs';
import * as path from 'node:path';

const base = () => process.env.MARAIN_E2E_URL!;
const article = () => path.join(process.env.MARAIN_E2E_SITE!, 'schemas', 'article.schema.yaml');
const ARTICLE = 'schemas/article.schema.yaml';
// The tests' own API calls carry an approver's token; the browser signs in.
const auth = () => ({ Authorization: `Bearer ${process.env.MARAIN_E2E_TOKEN}` });

async function signIn(page: Page, username: string, password = process.env.MARAIN_E2E_PASSWORD!) {
  await page.goto(base());
  await expect(page).toHaveURL(/\/login/);
  await page.getByLabel('User name').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

test.describe.serial('sign-in', () => {
  test('a wrong password is refused, the right one lets you in', async ({ page }) => {
    await signIn(page, 'admin', 'not the password');
    await expect(page.getByTestId('login-error')).toHaveText('Wrong user name or password.');
    fs.mkdirSync('screenshots', { recursive: true });
    await page.screenshot({ path: 'screenshots/login-refused.png', fullPage: true });
    await signIn(page, 'admin');
    await expect(page.getByTestId('user')).toHaveText('admin');
  });

  test('a viewer sees no Approve, and the API refuses the viewer with 403', async ({ page }) => {
    // Dropping a field waits for a person (WARNING on an empty table).
    const published = '  - id: published_at\n    type: datetime\n    label: Published at\n';
    const good = fs.readFileSync(article(), 'utf8');
    expect(good).toContain(published);
    fs.writeFileSync(article(), good.replace(published, ''));
    await signIn(page, 'viewer');
    await expect(page.getByTestId('user')).toHaveText('viewer');
    const card = page.locator(`[data-testid="change-card"][data-file="${ARTICLE}"]`);
    await expect(card).toBeVisible();
    await expect(card.getByRole('button', { name: 'Approve change' })).toHaveCount(0);
    await expect(card).toContainText('An approver can approve this change.');
    await page.screenshot({ path: 'screenshots/viewer.png', fullPage: true });
    const id = await card.getAttribute('data-id');
    // Same page, same session cookie, same origin: the role is what refuses it.
    const refused = await page.request.post(`${base()}/api/v1/hot-reload/changes/${id}/approve`, {
      headers: { Origin: base() },
      data: { reason: 'I am only a viewer' },
    });
    expect(refused.status()).toBe(403);
    expect((await refused.json()).error.code).toBe('forbidden');
    // Put the file back for the next tests; the pending change goes away.
    fs.writeFileSync(article(), good);
    await expect(page.getByTestId('change-card')).toHaveCount(0);
  });

  test('a cross-origin POST with a valid session is refused', async ({ page }) => {
    await signIn(page, 'admin');
    await expect(page.getByTestId('user')).toHaveText('admin');
    const forged = await page.request.post(`${base()}/api/v1/hot-reload/reload`, {
      headers: { Origin: 'http://evil.example' },
    });
    expect(forged.status()).toBe(403);
    expect((await forged.json()).error.code).toBe('origin_mismatch');
    const own = await page.request.post(`${base()}/api/v1/hot-reload/reload`, { headers: { Origin: base() } });
    expect(own.status()).toBe(202);
  });

  test('a rejected file shows its error at its line, then clears when fixed', async ({ page }) => {
    await signIn(page, 'admin');
    await expect(page.locator('.live.on')).toBeVisible();
    const good = fs.readFileSync(article(), 'utf8');
    fs.writeFileSync(article(), good.replace('    type: text\n', '    type: txt\n'));
    const problem = page.locator(`[data-testid="rejected"][data-file="${ARTICLE}"]`);
    await expect(problem).toBeVisible();
    await expect(problem).toContainText('unknown type `txt`');
    await expect(problem.getByTestId('excerpt').locator('.at')).toContainText('type: txt');
    await page.screenshot({ path: 'screenshots/rejected.png', fullPage: true });
    fs.writeFileSync(article(), good);
    await expect(problem).toHaveCount(0);
    await expect(page.getByTestId('sync-status')).toHaveAttribute('data-in-sync', 'true');
  });
});

test.describe.serial('hot reload from disk to dashboard', () => {
  test.beforeEach(async ({ page }) => {
    await signIn(page, 'admin');
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
      headers: auth(),
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

    await card.getByRole('textbox', { name: 'Reason to approve' }).fill('body moves to blocks');
    await card.getByLabel('Type article to confirm').fill('article');
    await card.getByRole('button', { name: `Approve change` }).click();

    await expect(page.getByTestId('change-card')).toHaveCount(0);
    const applied = page.locator(`.history li[data-file="${ARTICLE}"][data-version="3"]`);
    await expect(applied).toBeVisible();
    await expect(applied).toContainText('body moves to blocks');
    await expect(page.getByTestId('sync-status')).toHaveAttribute('data-in-sync', 'true');
    await page.screenshot({ path: 'screenshots/applied.png', fullPage: true });

    // The server agrees: in sync, and version 3 dropped the column.
    const status = await (await request.get(`${base()}/api/v1/hot-reload/status`, { headers: auth() })).json();
    expect(status.in_sync).toBe(true);
    expect(status.pending).toEqual([]);
    const history = await (await request.get(`${base()}/api/v1/hot-reload/history?file_path=${ARTICLE}`, { headers: auth() })).json();
    expect(history.versions.map((v: any) => v.version)).toEqual([3, 2, 1]);
    expect(history.versions[0].severity).toBe('BREAKING');
    expect(history.versions[0].actor).toBe('admin');
    expect(history.versions[0].sql.join('\n')).toContain('ALTER TABLE "content_article" DROP COLUMN "body"');
    // The content API serves the article without the dropped field.
    const stored = await (await request.get(`${base()}/api/v1/entity/article/a1`, { headers: auth() })).json();
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

    const stored = await (await request.get(`${base()}/api/v1/entity/article/a1`, { headers: auth() })).json();
    expect(stored.body).toBe('Lots of words');
    expect(fs.readFileSync(article(), 'utf8')).toContain('  - id: body\n');
  });

  test('the file history compares any two versions', async ({ page }) => {
    await page.goto(`${base()}/history?file=${ARTICLE}`);
    await expect(page.getByTestId('history-file')).toHaveText(ARTICLE);
    await expect(page.getByTestId('versions').locator('tbody tr')).toHaveCount(4);
    await expect(page.locator('tr[data-version="3"]')).toContainText('body moves to blocks');
    await page.getByLabel('Compare from version').selectOption('1');
    await page.getByLabel('Compare to version').selectOption('3');
    await page.getByRole('button', { name: 'Compare' }).click();
    await expect(page).toHaveURL(/from=1&to=3/);
    const diff = page.getByTestId('version-diff');
    await expect(diff.locator('.dl-removed')).toContainText([/- id: body/]);
    await expect(diff.locator('.dl-added')).toContainText([/- id: subtitle/]);
    await page.screenshot({ path: 'screenshots/file-history.png', fullPage: true });
  });

  test('the audit log filters by kind and actor', async ({ page }) => {
    await page.goto(`${base()}/audit?kind=applied&actor=admin`);
    const rows = page.getByTestId('audit').locator('tbody tr');
    await expect(rows.first()).toBeVisible();
    expect(await rows.count()).toBeGreaterThanOrEqual(2);
    for (const kind of await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-kind')))) {
      expect(kind).toBe('applied');
    }
    await expect(page.getByTestId('audit')).toContainText(ARTICLE);
    await page.screenshot({ path: 'screenshots/audit.png', fullPage: true });
    await page.goto(`${base()}/audit?actor=nobody`);
    await expect(page.locator('.empty')).toContainText('No event matches');
  });

  test('a change is rejected with a reason, and the page works on a phone', async ({ page }) => {
    const text = fs.readFileSync(article(), 'utf8');
    // Dropping `slug` deletes a1's slug: BREAKING, so it waits.
    const slug = '  - id: slug\n    type: slug\n    required: true\n    unique: true\n    label: URL slug\n';
    expect(text).toContain(slug);
    fs.writeFileSync(article(), text.replace(slug, ''));
    const card = page.locator(`[data-testid="change-card"][data-file="${ARTICLE}"]`);
    await expect(card).toBeVisible();
    await card.getByLabel('Reason to reject').fill('keep the default');
    await card.getByRole('button', { name: 'Reject change' }).click();
    await expect(page.getByTestId('change-card')).toHaveCount(0);
    const problem = page.locator(`[data-testid="rejected"][data-file="${ARTICLE}"]`);
    await expect(problem).toContainText('rejected by admin: keep the default');
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: 'screenshots/phone.png', fullPage: true });
    fs.writeFileSync(article(), text);
    await expect(problem).toHaveCount(0);
  });
});
