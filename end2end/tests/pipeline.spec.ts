// The dashboard in a real browser: sign-in, file edits on disk showing up live,
// a BREAKING change approved from it, rollback, roles and the Origin check.
// Every test gets its own server and site (../marain.ts) and sets up what it
// needs, so any one of them runs alone.
import { APIRequestContext, Page } from '@playwright/test';
import * as fs from 'node:fs';
import AxeBuilder from '@axe-core/playwright';
import { expect, Marain, sql, test } from '../marain';

const ARTICLE = 'schemas/article.schema.yaml';
const BODY = '  - id: body\n    type: rich_text\n    label: Body\n';
const SUBTITLE = '  - id: subtitle\n    type: text\n    label: Subtitle\n';

async function signIn(page: Page, marain: Marain, username: string, password = marain.password) {
  await page.goto(marain.url);
  await expect(page).toHaveURL(/\/login/);
  await page.getByLabel('User name').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

/// Signed in as admin, hydrated, subscribed to the event stream, and marked so
/// that a page reload would show (the marker would be gone).
async function liveAsAdmin(page: Page, marain: Marain) {
  await signIn(page, marain, 'admin');
  await expect(page.getByTestId('user')).toHaveText('admin');
  await expect(page.locator('.live.on')).toBeVisible();
  await page.evaluate(() => ((window as any).__loaded_once = true));
}

function editArticle(marain: Marain, edit: (text: string) => string) {
  const text = fs.readFileSync(marain.file(ARTICLE), 'utf8');
  const edited = edit(text);
  expect(edited).not.toEqual(text);
  fs.writeFileSync(marain.file(ARTICLE), edited);
}

async function history(request: APIRequestContext, marain: Marain): Promise<any[]> {
  const res = await request.get(`${marain.url}/api/v1/hot-reload/history?file_path=${ARTICLE}`, { headers: marain.auth });
  return (await res.json()).versions;
}

/// Waits for the article's pending change and approves it over the API.
async function approveArticle(request: APIRequestContext, marain: Marain, reason: string) {
  let id: number | undefined;
  await expect(async () => {
    const status = await (await request.get(`${marain.url}/api/v1/hot-reload/status`, { headers: marain.auth })).json();
    id = status.pending.find((c: any) => c.file === ARTICLE)?.id;
    expect(id).toBeDefined();
  }).toPass();
  const res = await request.post(`${marain.url}/api/v1/hot-reload/changes/${id}/approve`, {
    headers: marain.auth,
    data: { reason, confirm: 'article' },
  });
  expect(res.status()).toBe(200);
}

/// An article with a body, so that dropping `body` deletes data (BREAKING).
async function createArticle(request: APIRequestContext, marain: Marain) {
  const created = await request.post(`${marain.url}/api/v1/entity/article`, {
    headers: marain.auth,
    data: { id: 'a1', title: 'Hello', slug: 'hello', body: 'Lots of words' },
  });
  expect(created.status()).toBe(201);
  expect((await created.json()).body).toBe('Lots of words');
}

test.describe('sign-in', () => {
  test('a wrong password is refused, the right one lets you in', async ({ page, marain }) => {
    await signIn(page, marain, 'admin', 'not the password');
    await expect(page.getByTestId('login-error')).toHaveText('Wrong user name or password.');
    fs.mkdirSync('screenshots', { recursive: true });
    await page.screenshot({ path: 'screenshots/login-refused.png', fullPage: true });
    await signIn(page, marain, 'admin');
    await expect(page.getByTestId('user')).toHaveText('admin');
  });

  test('a viewer sees no Approve, and the API refuses the viewer with 403', async ({ page, marain }) => {
    // Dropping a field waits for a person (WARNING on an empty table).
    editArticle(marain, (t) => t.replace('  - id: published_at\n    type: datetime\n    label: Published at\n', ''));
    await signIn(page, marain, 'viewer');
    await expect(page.getByTestId('user')).toHaveText('viewer');
    const card = page.locator(`[data-testid="change-card"][data-file="${ARTICLE}"]`);
    await expect(card).toBeVisible();
    await expect(card.getByRole('button', { name: 'Approve change' })).toHaveCount(0);
    await expect(card).toContainText('An approver can approve this change.');
    fs.mkdirSync('screenshots', { recursive: true });
    await page.screenshot({ path: 'screenshots/viewer.png', fullPage: true });
    const id = await card.getAttribute('data-id');
    // Same page, same session cookie, same origin: the role is what refuses it.
    const refused = await page.request.post(`${marain.url}/api/v1/hot-reload/changes/${id}/approve`, {
      headers: { Origin: marain.url },
      data: { reason: 'I am only a viewer' },
    });
    expect(refused.status()).toBe(403);
    expect((await refused.json()).error.code).toBe('forbidden');
    await expect(card).toBeVisible();
  });

  test('a cross-origin POST with a valid session is refused', async ({ page, marain }) => {
    await signIn(page, marain, 'admin');
    await expect(page.getByTestId('user')).toHaveText('admin');
    const forged = await page.request.post(`${marain.url}/api/v1/hot-reload/reload`, {
      headers: { Origin: 'http://evil.example' },
    });
    expect(forged.status()).toBe(403);
    expect((await forged.json()).error.code).toBe('origin_mismatch');
    const own = await page.request.post(`${marain.url}/api/v1/hot-reload/reload`, { headers: { Origin: marain.url } });
    expect(own.status()).toBe(202);
  });

  test('a rejected file shows its error at its line, then clears when fixed', async ({ page, marain }) => {
    await liveAsAdmin(page, marain);
    const good = fs.readFileSync(marain.file(ARTICLE), 'utf8');
    fs.writeFileSync(marain.file(ARTICLE), good.replace('    type: text\n', '    type: txt\n'));
    const problem = page.locator(`[data-testid="rejected"][data-file="${ARTICLE}"]`);
    await expect(problem).toBeVisible();
    await expect(problem).toContainText('unknown type `txt` — did you mean `text`?');
    await expect(problem.getByTestId('excerpt').locator('.at')).toContainText('type: txt');
    fs.mkdirSync('screenshots', { recursive: true });
    await page.screenshot({ path: 'screenshots/rejected.png', fullPage: true });
    fs.writeFileSync(marain.file(ARTICLE), good);
    await expect(problem).toHaveCount(0);
    await expect(page.getByTestId('sync-status')).toHaveAttribute('data-in-sync', 'true');
  });
});

test.describe('hot reload from disk to dashboard', () => {
  test('the page lists the watched files in sync', async ({ page, marain }) => {
    await liveAsAdmin(page, marain);
    await expect(page.getByTestId('sync-status')).toHaveAttribute('data-in-sync', 'true');
    await expect(page.locator(`tr[data-file="${ARTICLE}"]`)).toContainText('in sync');
    await expect(page.locator('tr[data-file="schemas/user.schema.yaml"]')).toContainText('v1');
    fs.mkdirSync('screenshots', { recursive: true });
    await page.screenshot({ path: 'screenshots/overview.png', fullPage: true });
  });

  test('a SAFE edit is applied and shown without a reload', async ({ page, marain }) => {
    await liveAsAdmin(page, marain);
    fs.appendFileSync(marain.file(ARTICLE), SUBTITLE);
    await expect(page.locator(`.history li[data-file="${ARTICLE}"][data-version="2"]`)).toBeVisible();
    await expect(page.getByTestId('feed')).toContainText('applied');
    await expect(page.getByTestId('change-card')).toHaveCount(0);
    expect(await page.evaluate(() => (window as any).__loaded_once)).toBe(true);
  });

  test('a BREAKING edit waits, is approved with confirmation, and lands in history', async ({ page, request, marain }) => {
    await createArticle(request, marain);
    await liveAsAdmin(page, marain);
    editArticle(marain, (t) => t.replace(BODY, ''));

    const card = page.locator(`[data-testid="change-card"][data-file="${ARTICLE}"]`);
    await expect(card).toBeVisible();
    await expect(card).toHaveAttribute('data-severity', 'BREAKING');
    await expect(card.locator('.card-head .badge')).toHaveText(/BREAKING/);
    await expect(card).toContainText('- field article.body');
    await expect(card.locator('.hazards')).toContainText('1 value of `body` is deleted');
    await expect(card.locator('.dl-removed')).toHaveText([/- id: body/, /type: rich_text/, /label: Body/]);
    await expect(card.locator('.dl-added')).toHaveCount(0);
    await expect(card.getByTestId('sql')).toContainText('DROP COLUMN "body"');
    await expect(page.getByTestId('sync-status')).toHaveAttribute('data-in-sync', 'false');
    expect(await page.evaluate(() => (window as any).__loaded_once)).toBe(true);
    fs.mkdirSync('screenshots', { recursive: true });
    await page.screenshot({ path: 'screenshots/pending-breaking.png', fullPage: true });

    await card.getByRole('textbox', { name: 'Reason to approve' }).fill('body moves to blocks');
    await card.getByLabel('Type article to confirm').fill('article');
    await card.getByRole('button', { name: `Approve change` }).click();

    await expect(page.getByTestId('change-card')).toHaveCount(0);
    const applied = page.locator(`.history li[data-file="${ARTICLE}"][data-version="2"]`);
    await expect(applied).toBeVisible();
    await expect(applied).toContainText('body moves to blocks');
    await expect(page.getByTestId('sync-status')).toHaveAttribute('data-in-sync', 'true');
    await page.screenshot({ path: 'screenshots/applied.png', fullPage: true });

    // The server agrees: in sync, and version 2 dropped the column.
    const status = await (await request.get(`${marain.url}/api/v1/hot-reload/status`, { headers: marain.auth })).json();
    expect(status.in_sync).toBe(true);
    expect(status.pending).toEqual([]);
    const versions = await history(request, marain);
    expect(versions.map((v: any) => v.version)).toEqual([2, 1]);
    expect(versions[0].severity).toBe('BREAKING');
    expect(versions[0].actor).toBe('admin');
    expect(versions[0].sql.join('\n')).toContain('ALTER TABLE "content_article" DROP COLUMN "body"');
    // The content API serves the article without the dropped field.
    const stored = await (await request.get(`${marain.url}/api/v1/entity/article/a1`, { headers: marain.auth })).json();
    expect(stored.title).toBe('Hello');
    expect(stored).not.toHaveProperty('body');
  });

  test('rolling back to the previous version brings the dropped data back', async ({ page, request, marain }) => {
    await createArticle(request, marain);
    editArticle(marain, (t) => t.replace(BODY, ''));
    await approveArticle(request, marain, 'drop the body');
    expect((await history(request, marain)).length).toBe(2);

    await liveAsAdmin(page, marain);
    await page.getByRole('button', { name: `Roll back ${ARTICLE} to version 1` }).click();
    const card = page.locator(`[data-testid="change-card"][data-file="${ARTICLE}"]`);
    await expect(card).toBeVisible();
    await expect(card).toContainText('+ field article.body');
    await expect(card.locator('.tag')).toHaveText('rollback to v1');
    await expect(card.getByTestId('sql')).toContainText('UPDATE "content_article" SET "body"');
    fs.mkdirSync('screenshots', { recursive: true });
    await page.screenshot({ path: 'screenshots/rollback-pending.png', fullPage: true });
    await card.getByRole('button', { name: 'Approve change' }).click();
    await expect(page.locator(`.history li[data-file="${ARTICLE}"][data-version="3"]`)).toBeVisible();
    await expect(page.getByTestId('sync-status')).toHaveAttribute('data-in-sync', 'true');

    const stored = await (await request.get(`${marain.url}/api/v1/entity/article/a1`, { headers: marain.auth })).json();
    expect(stored.body).toBe('Lots of words');
    expect(fs.readFileSync(marain.file(ARTICLE), 'utf8')).toContain(BODY);
  });

  test('the file history compares any two versions', async ({ page, request, marain }) => {
    // Version 2 adds a subtitle (SAFE, by itself); version 3 drops the body.
    fs.appendFileSync(marain.file(ARTICLE), SUBTITLE);
    await expect(async () => expect((await history(request, marain)).length).toBe(2)).toPass();
    editArticle(marain, (t) => t.replace(BODY, ''));
    await approveArticle(request, marain, 'body moves to blocks');

    await signIn(page, marain, 'admin');
    await expect(page.getByTestId('user')).toHaveText('admin');
    await page.goto(`${marain.url}/history?file=${ARTICLE}`);
    await expect(page.getByTestId('history-file')).toHaveText(ARTICLE);
    await expect(page.getByTestId('versions').locator('tbody tr')).toHaveCount(3);
    await expect(page.locator('tr[data-version="3"]')).toContainText('body moves to blocks');
    await page.getByLabel('Compare from version').selectOption('1');
    await page.getByLabel('Compare to version').selectOption('3');
    await page.getByRole('button', { name: 'Compare' }).click();
    await expect(page).toHaveURL(/from=1&to=3/);
    const diff = page.getByTestId('version-diff');
    await expect(diff.locator('.dl-removed')).toContainText([/- id: body/]);
    await expect(diff.locator('.dl-added')).toContainText([/- id: subtitle/]);
    fs.mkdirSync('screenshots', { recursive: true });
    await page.screenshot({ path: 'screenshots/file-history.png', fullPage: true });
  });

  test('the audit log filters by kind and actor', async ({ page, request, marain }) => {
    // Two applied events by the API token `e2e`, and the watcher's own.
    editArticle(marain, (t) => t.replace('  - id: published_at\n    type: datetime\n    label: Published at\n', ''));
    await approveArticle(request, marain, 'no dates');
    fs.appendFileSync(marain.file(ARTICLE), SUBTITLE);
    await expect(async () => expect((await history(request, marain)).length).toBe(3)).toPass();

    await signIn(page, marain, 'admin');
    await expect(page.getByTestId('user')).toHaveText('admin');
    await page.goto(`${marain.url}/audit?kind=applied&actor=e2e`);
    const rows = page.getByTestId('audit').locator('tbody tr');
    await expect(rows).toHaveCount(1);
    await expect(rows.first()).toHaveAttribute('data-kind', 'applied');
    await expect(page.getByTestId('audit')).toContainText(ARTICLE);
    await page.goto(`${marain.url}/audit?kind=applied`);
    expect(await rows.count()).toBeGreaterThanOrEqual(2);
    for (const kind of await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-kind')))) {
      expect(kind).toBe('applied');
    }
    fs.mkdirSync('screenshots', { recursive: true });
    await page.screenshot({ path: 'screenshots/audit.png', fullPage: true });
    await page.goto(`${marain.url}/audit?actor=nobody`);
    await expect(page.locator('.empty')).toContainText('No event matches');
  });

  test('a change is rejected with a reason, and the page works on a phone', async ({ page, request, marain }) => {
    // Dropping `slug` deletes a1's slug: BREAKING, so it waits.
    await createArticle(request, marain);
    await liveAsAdmin(page, marain);
    const text = fs.readFileSync(marain.file(ARTICLE), 'utf8');
    editArticle(marain, (t) => t.replace('  - id: slug\n    type: slug\n    required: true\n    unique: true\n    label: URL slug\n', ''));
    const card = page.locator(`[data-testid="change-card"][data-file="${ARTICLE}"]`);
    await expect(card).toBeVisible();
    await card.getByLabel('Reason to reject').fill('keep the default');
    await card.getByRole('button', { name: 'Reject change' }).click();
    await expect(page.getByTestId('change-card')).toHaveCount(0);
    const problem = page.locator(`[data-testid="rejected"][data-file="${ARTICLE}"]`);
    await expect(problem).toContainText('rejected by admin: keep the default');
    // On a 390 px phone the page needs no sideways scrolling.
    await page.setViewportSize({ width: 390, height: 844 });
    const widths = await page.evaluate(() => ({
      scroll: document.documentElement.scrollWidth,
      client: document.documentElement.clientWidth,
    }));
    expect(widths.scroll).toBeLessThanOrEqual(widths.client);
    fs.mkdirSync('screenshots', { recursive: true });
    await page.screenshot({ path: 'screenshots/phone.png', fullPage: true });
    fs.writeFileSync(marain.file(ARTICLE), text);
    await expect(problem).toHaveCount(0);
  });
});

test.describe('access', () => {
  test('an approver sees who is signed in, ends a session and revokes a token', async ({ page, browser, request, marain }) => {
    // A viewer signed in elsewhere: it sees who is signed in, but no buttons.
    const elsewhere = await browser.newContext({ userAgent: 'Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0' });
    const viewerPage = await elsewhere.newPage();
    await signIn(viewerPage, marain, 'viewer');
    await expect(viewerPage.getByTestId('user')).toHaveText('viewer');
    await viewerPage.goto(`${marain.url}/access`);
    await expect(viewerPage.locator('[data-testid="sessions"] tr[data-user="viewer"]')).toBeVisible();
    await expect(viewerPage.getByRole('button', { name: /Revoke token/ })).toHaveCount(0);
    await expect(viewerPage.getByRole('button', { name: /End the session/ })).toHaveCount(0);

    await signIn(page, marain, 'admin');
    await expect(page.getByTestId('user')).toHaveText('admin');
    await page.getByRole('link', { name: 'Access' }).click();
    await expect(page).toHaveURL(/\/access$/);
    const mine = page.locator('[data-testid="sessions"] tr[data-current="true"]');
    await expect(mine).toHaveAttribute('data-user', 'admin');
    await expect(mine).toContainText('you');
    const theirs = page.locator('[data-testid="sessions"] tr[data-user="viewer"]');
    await expect(theirs).toContainText('Firefox on Linux');
    await expect(theirs).toContainText('127.0.0.1');
    fs.mkdirSync('screenshots', { recursive: true });
    await page.screenshot({ path: 'screenshots/access.png', fullPage: true });

    // Ending the viewer's session signs it out on its next request.
    await theirs.getByRole('button', { name: 'End the session of viewer from 127.0.0.1' }).click();
    await expect(page.getByTestId('access-outcome')).toContainText('Session ended');
    await expect(theirs).toHaveCount(0);
    await viewerPage.goto(`${marain.url}/`);
    await expect(viewerPage).toHaveURL(/\/login/);

    // Revoking the test's own token: refused from then on.
    const before = await request.get(`${marain.url}/api/v1/hot-reload/status`, { headers: marain.auth });
    expect(before.status()).toBe(200);
    const row = page.locator('[data-testid="tokens"] tr[data-token="e2e"]');
    await expect(row).toContainText('approver');
    await row.getByRole('button', { name: 'Revoke token e2e' }).click();
    await expect(page.getByTestId('access-outcome')).toContainText('Token `e2e` revoked');
    await expect(row).toHaveCount(0);
    const after = await request.get(`${marain.url}/api/v1/hot-reload/status`, { headers: marain.auth });
    expect(after.status()).toBe(401);
    await elsewhere.close();
  });
});

test.describe('migration', () => {
  test('an approver moves the legacy content table and watches it go', async ({ page, marain }) => {
    // What an existing Marain install has: one JSON table, one row that does not fit.
    const rows: [string, string, object][] = [
      ['u1', 'user', { username: 'ann', display_name: 'Ann' }],
      ['u2', 'user', { username: 'bob', display_name: 'Bob', managed_by: 'u1' }],
      ['u3', 'user', { username: 'cy', display_name: 'Cy', bio: 'Writes about tea.' }],
      ['u4', 'user', { username: 'dee' }],
      ['a1', 'article', { title: 'Hello', slug: 'hello', author: 'u1', status: 'published' }],
      ['a2', 'article', { title: 'Two', slug: 'two', author: 'u2', published_at: '2025-01-01T00:00:00Z' }],
    ];
    sql(marain, [
      'CREATE TABLE content (id TEXT PRIMARY KEY, entity_type TEXT, data TEXT, created_at TIMESTAMP, updated_at TIMESTAMP)',
      ...rows.map(([id, type, data]) => `INSERT INTO content VALUES ('${id}', '${type}', '${JSON.stringify(data)}', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)`),
    ]);

    await signIn(page, marain, 'admin');
    await page.getByRole('link', { name: 'Migration' }).click();
    await expect(page).toHaveURL(/\/migration$/);
    await expect(page.getByTestId('migration-startable')).toContainText('content');
    await page.getByRole('button', { name: 'Start copying' }).click();

    // The counts arrive over the event stream: no reload.
    const users = page.getByTestId('migration-type-user');
    await expect(users.getByTestId('copied')).toHaveText('3 of 4');
    await expect(users.getByTestId('misfits')).toHaveText('1');
    await expect(page.getByTestId('migration-type-article').getByTestId('copied')).toHaveText('2 of 2');
    const misfits = page.getByTestId('migration-misfits');
    await expect(misfits).toContainText('u4');
    await expect(misfits).toContainText('field `display_name` is required');

    // The content API already serves the row that stayed behind, from the legacy table.
    const dee = await page.request.get(`${marain.url}/api/v1/entity/user/u4`, { headers: marain.auth });
    expect(dee.status()).toBe(200);
    expect((await dee.json()).username).toBe('dee');

    await page.getByRole('button', { name: 'Verify' }).click();
    await expect(page.getByTestId('migration-verify')).toContainText('Verify passed: 5 rows compared, 1 not copied');
    await page.getByRole('button', { name: 'Finish' }).click();
    await expect(page.getByRole('alert')).toContainText('cannot finish');
    fs.mkdirSync('screenshots', { recursive: true });
    await page.screenshot({ path: 'screenshots/migration.png', fullPage: true });
  });
});

test.describe('reading diffs', () => {
  test('a headline says what changed, and the side-by-side layout is remembered', async ({ page, request, marain }) => {
    await createArticle(request, marain);
    await liveAsAdmin(page, marain);
    editArticle(marain, (t) => t.replace(BODY, ''));
    const card = page.locator(`[data-testid="change-card"][data-file="${ARTICLE}"]`);
    await expect(card.getByTestId('headline')).toHaveText('field `body` removed · 1 value backed up');
    await expect(page.getByTestId('sync-status')).toContainText('Out of sync: 1 change waits for approval');
    // Unified by default; side by side once chosen, and still after a reload.
    await expect(card.locator('.diff-unified')).toBeVisible();
    await expect(card.getByTestId('diff-split')).toBeHidden();
    await card.getByRole('button', { name: 'Side by side' }).click();
    await expect(card.getByTestId('diff-split')).toBeVisible();
    await expect(card.locator('.diff-unified')).toBeHidden();
    await expect(card.getByTestId('diff-split').locator('code.sl-removed')).toHaveText([/- id: body/, /type: rich_text/, /label: Body/]);
    await page.reload();
    await expect(card.getByTestId('diff-split')).toBeVisible();
    fs.mkdirSync('screenshots', { recursive: true });
    await card.screenshot({ path: 'screenshots/side-by-side.png' });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: 'screenshots/side-by-side-phone.png', fullPage: true });
    await card.getByRole('button', { name: 'Unified' }).click();
    await expect(card.locator('.diff-unified')).toBeVisible();
  });
});

/// No serious or critical WCAG 2 A/AA violation on `page` as it is now.
async function expectAccessible(page: Page, what: string) {
  const results = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']).analyze();
  const bad = results.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  const described = bad.map((v) => `${v.id} (${v.impact}): ${v.help}\n  ${v.nodes.map((n) => n.target.join(' ')).join('\n  ')}`);
  expect(described, `${what}: ${described.join('\n')}`).toEqual([]);
}

test.describe('accessibility', () => {
  for (const scheme of ['light', 'dark'] as const) {
    test(`every page passes axe-core in ${scheme} mode`, async ({ page, request, marain }) => {
      await page.emulateMedia({ colorScheme: scheme });
      await page.goto(`${marain.url}/login`);
      await expectAccessible(page, 'sign-in');
      await createArticle(request, marain);
      await liveAsAdmin(page, marain);
      // A card with hazards and a diff, and a rejected file, on the overview.
      editArticle(marain, (t) => t.replace(BODY, ''));
      fs.writeFileSync(marain.file('schemas/broken.schema.yaml'), 'id: broken\nfields: [\n');
      await expect(page.getByTestId('change-card')).toHaveCount(1);
      await expect(page.locator('[data-testid="rejected"]')).toHaveCount(1);
      await expectAccessible(page, 'overview');
      await page.getByTestId('change-card').getByRole('button', { name: 'Side by side' }).click();
      await expectAccessible(page, 'overview, side by side');
      for (const path of ['/history?file=' + ARTICLE, '/audit', '/access', '/migration', '/schema', '/timeline']) {
        await page.goto(marain.url + path);
        await expect(page.locator('main, .page').first()).toBeVisible();
        await expectAccessible(page, path);
      }
      if (scheme === 'dark') {
        fs.mkdirSync('screenshots', { recursive: true });
        await page.goto(marain.url);
        await page.screenshot({ path: 'screenshots/overview-dark.png', fullPage: true });
      }
    });
  }
});

test.describe('the site as a picture', () => {
  test('the schema page draws entities and references, and what a BREAKING change drops is red', async ({ page, request, marain }) => {
    await createArticle(request, marain);
    await liveAsAdmin(page, marain);
    editArticle(marain, (t) => t.replace(BODY, ''));
    await expect(page.getByTestId('change-card')).toHaveCount(1);
    await page.goto(`${marain.url}/schema`);
    const picture = page.getByTestId('schema-picture');
    await expect(picture.locator('svg')).toBeVisible();
    // Every entity of the demo site is a box, with its row count.
    const rows = page.getByTestId('schema-entities').locator('tbody tr');
    const ids = await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-entity')));
    expect(ids.length).toBeGreaterThan(1);
    for (const id of ids) await expect(picture.locator('svg')).toContainText(id!);
    await expect(picture.locator('svg')).toContainText('article — 1 row');
    // References are arrows: at least one path per reference.
    const references = await rows.evaluateAll((trs) => trs.map((tr) => (tr.children[3].textContent ?? '').split(', ').filter((x) => x).length).reduce((a, b) => a + b, 0));
    expect(references).toBeGreaterThan(0);
    expect(await picture.locator('svg path').count()).toBeGreaterThanOrEqual(references);
    // The field the BREAKING change drops is red, and its entity is marked.
    const dropped = picture.locator('tspan', { hasText: 'body: rich_text (dropped)' });
    await expect(dropped).toHaveAttribute('fill', '#a40e26');
    await expect(page.locator('tr[data-entity="article"]')).toContainText('BREAKING');
    await expect(page.locator('tr[data-entity="article"]')).toContainText('field `body` removed');
    await page.locator('tr[data-entity="article"] a').click();
    await expect(page).toHaveURL(/\/history\?file=schemas\/article\.schema\.yaml/);
    await page.goto(`${marain.url}/schema`);
    fs.mkdirSync('screenshots', { recursive: true });
    await page.screenshot({ path: 'screenshots/schema.png', fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: 'screenshots/schema-phone.png', fullPage: true });
  });

  test('the timeline shows each applied version and each rejection on its file\'s lane', async ({ page, request, marain }) => {
    await liveAsAdmin(page, marain);
    fs.appendFileSync(marain.file(ARTICLE), SUBTITLE);
    await expect(page.locator(`.history li[data-file="${ARTICLE}"][data-version="2"]`)).toBeVisible();
    const good = fs.readFileSync(marain.file(ARTICLE), 'utf8');
    fs.writeFileSync(marain.file(ARTICLE), good.replace('    type: text\n', '    type: txt\n'));
    await expect(page.locator(`[data-testid="rejected"][data-file="${ARTICLE}"]`)).toBeVisible();
    fs.writeFileSync(marain.file(ARTICLE), good);
    await expect(page.getByTestId('sync-status')).toHaveAttribute('data-in-sync', 'true');
    await page.goto(`${marain.url}/timeline`);
    const timeline = page.getByTestId('timeline');
    await expect(timeline.locator(`circle[data-file="${ARTICLE}"]`)).toHaveCount(2);
    await expect(timeline.locator(`circle[data-file="${ARTICLE}"][data-version="2"]`)).toHaveClass(/mark-safe/);
    await expect(timeline.locator('path.cross[data-kind="rejected"]')).toHaveCount(1);
    const versions = (await history(request, marain)).length;
    expect(versions).toBe(2);
    fs.mkdirSync('screenshots', { recursive: true });
    await page.screenshot({ path: 'screenshots/timeline.png', fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: 'screenshots/timeline-phone.png', fullPage: true });
  });
});


test.describe('reference data', () => {
  test('a data change shows its row diff, waits when it deletes a row, and applies once approved', async ({ page, request, marain }) => {
    const DATA = 'data/category/main.yaml';
    await liveAsAdmin(page, marain);
    fs.writeFileSync(marain.file('schemas/category.schema.yaml'),
      'id: category\nname: Category\nfields:\n  - id: title\n    type: text\n    required: true\n  - id: rank\n    type: integer\n');
    fs.mkdirSync(marain.file('data/category'), { recursive: true });
    fs.writeFileSync(marain.file(DATA),
      'records:\n  - id: news\n    title: News\n    rank: 1\n  - id: sport\n    title: Sport\n    rank: 2\n');
    await expect(page.locator(`.history li[data-file="${DATA}"][data-version="1"]`)).toBeVisible();

    // Another writer changes a row the file wrote: drift of the file, on the dashboard.
    const put = await request.put(`${marain.url}/api/v1/entity/category/news`, {
      headers: marain.auth,
      data: { title: 'Edited', rank: 1 },
    });
    expect(put.status()).toBe(200);
    const drift = page.getByTestId('drift');
    await expect(drift).toContainText('row `news` was changed by another writer since data/category/main.yaml applied');
    await expect(drift).toContainText('`title` is "Edited" in the database, "News" in the file');

    fs.writeFileSync(marain.file(DATA),
      'records:\n  - id: news\n    title: Latest news\n    rank: 1\n  - id: culture\n    title: Culture\n    rank: 3\n');
    const card = page.locator(`[data-testid="change-card"][data-file="${DATA}"]`);
    await expect(card).toBeVisible();
    await expect(card).toHaveAttribute('data-severity', 'BREAKING');
    await expect(card.getByTestId('headline')).toContainText('record `sport` of `category` removed');
    const rows = card.getByTestId('row-diff');
    const changed = rows.locator('tr.row-changed[data-record="news"][data-field="title"]');
    await expect(changed.locator('.before')).toHaveText('"News"');
    await expect(changed.locator('.after')).toHaveText('"Latest news"');
    await expect(rows.locator('tr.row-added[data-record="culture"][data-field="title"] .after')).toHaveText('"Culture"');
    await expect(rows.locator('tr.row-removed[data-record="sport"][data-field="title"] .before')).toHaveText('"Sport"');
    await expect(card.getByTestId('sql')).toContainText('DELETE FROM "content_category"');
    // Never overwritten silently: the record's change says what the database holds.
    await expect(card.locator('.hazards')).toContainText('1 row was changed or deleted by another writer since data/category/main.yaml last applied');
    await expect(card.locator('.hazards')).toContainText('the database holds `rank` = 1, `title` = "Edited"');
    fs.mkdirSync('screenshots', { recursive: true });
    await page.screenshot({ path: 'screenshots/data-change.png', fullPage: true });

    await card.getByLabel('Type category to confirm').fill('category');
    await card.getByRole('button', { name: 'Approve change' }).click();
    await expect(card).toHaveCount(0);
    await expect(page.locator(`.history li[data-file="${DATA}"][data-version="2"]`)).toBeVisible();
    await expect(page.getByTestId('sync-status')).toHaveAttribute('data-in-sync', 'true');
  });
});

test.describe('online changes', () => {
  // A big table's change runs in phases beside live traffic (a type change:
  // a shadow table on either database). Small, slow batches make a few
  // thousand rows "big" and slow enough to watch: the card shows the
  // progress, pauses, and aborts.
  test('a running change shows its progress on the card and is paused and aborted from it', async ({ page, request, marain }) => {
    const HOT = 'config/config.hot_reload.yaml';
    fs.writeFileSync(
      marain.file(HOT),
      'id: hot_reload\nvalues:\n  auto_apply: none\n  online_threshold_rows: 500\n  online_batch_rows: 100\n  online_batch_pause_ms: 80\n',
    );
    await expect(async () => {
      const res = await request.get(`${marain.url}/api/v1/hot-reload/history?file_path=${HOT}`, { headers: marain.auth });
      expect((await res.json()).versions.length).toBe(1);
    }).toPass();
    fs.appendFileSync(marain.file(ARTICLE), '  - id: views\n    type: integer\n    label: Views\n');
    await approveArticle(request, marain, 'count views');
    sql(marain, [
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 6000) " +
        "INSERT INTO content_article (id, title, slug, views) SELECT 'a' || i, 'Title ' || i, 'slug-' || i, i FROM n",
    ]);

    await liveAsAdmin(page, marain);
    editArticle(marain, (t) => t.replace('  - id: views\n    type: integer\n', '  - id: views\n    type: text\n'));
    const card = page.locator(`[data-testid="change-card"][data-file="${ARTICLE}"]`);
    await expect(card).toBeVisible();
    // SQLite: the shadow table made, then filled; PostgreSQL: the shadow
    // table made, filled, cleared of the rows deleted meanwhile, the unique
    // index of `slug` built, the keys from and to it copied, then analyzed.
    const phases = marain.database.startsWith('postgres') ? 6 : 2;
    await expect(card.getByTestId('phases')).toContainText(`Online: ${phases} phases before the cut-over on 6000 rows`);
    await expect(card.getByTestId('phases')).toContainText('-- in batches, each its own transaction');
    const confirm = card.getByLabel('Type article to confirm');
    if (await confirm.count()) await confirm.fill('article');
    await card.getByRole('button', { name: 'Approve change' }).click();

    const run = card.getByTestId('online-run');
    await expect(run.getByTestId('online-run-text')).toContainText('rows/s');
    await card.getByRole('button', { name: /^Pause change/ }).click();
    await expect(run).toHaveAttribute('data-state', 'paused');
    await expect(run.getByTestId('online-run-text')).toContainText('paused by admin');
    await expect(card.getByRole('button', { name: /^Resume change/ })).toBeVisible();
    fs.mkdirSync('screenshots', { recursive: true });
    await page.screenshot({ path: 'screenshots/online-paused.png', fullPage: true });

    await card.getByRole('button', { name: /^Abort change/ }).click();
    await expect(page.getByRole('alert')).toContainText('aborted by admin');
    await expect(card.getByTestId('online-run')).toHaveCount(0);
    await expect(card).toBeVisible();
    // The table is as it was: no shadow column or table, every value an integer still.
    const stored = await (await request.get(`${marain.url}/api/v1/entity/article/a42`, { headers: marain.auth })).json();
    expect(stored.views).toBe(42);
  });
});
