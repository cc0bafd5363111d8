// Headless Chromium (Debian's `chromium` package) driven by playwright-core. A missing browser is a failure that
// names the package, never a skipped test.
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Locator, type Page } from 'playwright-core';
import { afterAll, beforeAll } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';

export const CHROMIUM = '/usr/bin/chromium';

/**
 * What a test file holds: a lease on its worker's one Chromium. `newPage` and `newContext` open a fresh context each
 * (nothing shared between files: cookies, storage, routes), and `close()` closes the contexts this lease opened, not
 * the browser.
 */
export interface TestBrowser {
  newPage: Browser['newPage'];
  newContext: Browser['newContext'];
  close(): Promise<void>;
}

async function launch(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: install Debian's chromium package (apt-get install -y chromium) to run the console tests`);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required'],
  });
}

// One Chromium per test worker, launched by the first console file the worker runs and kept for the files after it
// (vitest runs files in long-lived forks, isolate: false). A launch was ~3 CPU-s of browser, zygote and GPU processes,
// 17 of them a suite run; pages were never shared, and still are not. Kept on globalThis, so that it holds however
// vitest treats this module between files. It goes when the worker exits: Chromium ends with its pipe, and the profile
// directory playwright made for it is removed by the run's global teardown (test/global-setup.ts).
const holder = globalThis as { eldergateTestBrowser?: Promise<Browser> };

export async function launchBrowser(): Promise<TestBrowser> {
  // a launch that failed is tried again by the next file, not handed out
  holder.eldergateTestBrowser ??= launch().catch((err: unknown) => { holder.eldergateTestBrowser = undefined; throw err; });
  let browser = await holder.eldergateTestBrowser;
  // a crashed browser is replaced, not reused
  if (!browser.isConnected()) browser = await (holder.eldergateTestBrowser = launch());
  const mine = new Set<BrowserContext>();
  const track = (context: BrowserContext) => {
    mine.add(context);
    context.once('close', () => mine.delete(context));
    return context;
  };
  return {
    newContext: async (options) => track(await browser.newContext(options)),
    newPage: async (options) => {
      // what Browser.newPage does: a context of its own, closed with the page
      const context = track(await browser.newContext(options));
      const page = await context.newPage();
      page.once('close', () => void context.close().catch(() => undefined));
      return page;
    },
    close: async () => {
      await Promise.all([...mine].map((c) => c.close().catch(() => undefined)));
    },
  };
}

/** Log in through the page as a person would. */
export async function loginAs(page: Page, base: string, username: string, password: string): Promise<void> {
  await page.goto(base + '/');
  await page.fill('input[name=username]', username);
  await page.fill('input[name=password]', password);
  await page.click('button[type=submit]');
  await page.waitForSelector('header.top');
  await page.waitForSelector('.conn[data-conn=live]', { timeout: 20_000 });
}

/** Collect what the page says went wrong (uncaught errors, console errors) so a test can show it. */
export function watchErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`console: ${m.text()}`); });
  return errors;
}

/**
 * What became of the page's requests whose URL contains `part`, for a failure's message: when each was sent (ms after
 * this call), and when it ended and how (status, or the network's error). The array is filled as they come.
 */
export function watchLoads(page: Page, part: string): string[] {
  const t0 = Date.now();
  const loads: string[] = [];
  const path = (url: string) => new URL(url).pathname;
  page.on('request', (r) => { if (r.url().includes(part)) loads.push(`${path(r.url())} sent +${Date.now() - t0} ms`); });
  page.on('requestfinished', (r) => {
    if (r.url().includes(part)) void r.response().then((res) => loads.push(`${path(r.url())} ${res?.status() ?? '?'} +${Date.now() - t0} ms`));
  });
  page.on('requestfailed', (r) => { if (r.url().includes(part)) loads.push(`${path(r.url())} failed (${r.failure()?.errorText}) +${Date.now() - t0} ms`); });
  return loads;
}

/** A browser and a real gateway for the tests of one describe block, started before them and stopped after. */
export function browserAndGateway(): { t: TestGateway; browser: TestBrowser } {
  const rig = {} as { t: TestGateway; browser: TestBrowser };
  beforeAll(async () => {
    rig.browser = await launchBrowser(); // fails, naming the package, when chromium is missing
    rig.t = await startTestGateway();
  }, 60_000);
  afterAll(async () => {
    await rig.browser?.close();
    await rig.t?.stop();
  });
  return rig;
}

const DOCS = resolve(import.meta.dirname, '..', '..', 'docs');
let scratch: string | undefined;

/**
 * A screenshot of a console screen for docs/: always taken (the page must render), written into docs/ only when
 * SCREENSHOTS=1 (`npm run screenshots`), so that a test run leaves the checkout as it was.
 */
export async function docsShot(target: Page | Locator, name: string, opts: { fullPage?: boolean } = {}): Promise<void> {
  const dir = process.env.SCREENSHOTS === '1' ? DOCS : (scratch ??= mkdtempSync(join(tmpdir(), 'eg-shots-')));
  await target.screenshot({ path: join(dir, name), ...opts });
}
