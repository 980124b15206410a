/**
 * Report pages in headless Chromium (Debian's /usr/bin/chromium driven by playwright-core; no downloaded browser):
 * a page opened from its folder, with what must not happen recorded (console errors, page errors, failed
 * requests, requests off the folder), and the load state of its images.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface Browser {
  context: BrowserContext;
  close: () => Promise<void>;
}

export async function launchBrowser(): Promise<Browser> {
  const profileDir = mkdtempSync(join(tmpdir(), 'lea-chromium-'));
  const context = await chromium.launchPersistentContext(profileDir, {
    executablePath: '/usr/bin/chromium',
    args: CHROMIUM_ARGS,
    headless: true,
    viewport: { width: 1366, height: 860 },
  });
  return {
    context,
    close: async () => {
      await context.close();
      rmSync(profileDir, { recursive: true, force: true });
    },
  };
}

/** Opens a folder's index.html and records what must not happen: console errors, page errors, requests off it. */
export async function openPage(
  context: BrowserContext,
  dir: string,
): Promise<{ page: Page; problems: string[] }> {
  const page = await context.newPage();
  const problems: string[] = [];
  const root = pathToFileURL(dir).href;
  page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`));
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`failed: ${r.url()}`));
  page.on('request', (r) => !r.url().startsWith(root) && problems.push(`outside the report: ${r.url()}`));
  await page.goto(pathToFileURL(join(dir, 'index.html')).href, { waitUntil: 'load' });
  return { page, problems };
}

/** Every <img>: [src, complete, naturalWidth]. */
export async function imageStates(page: Page): Promise<[string, boolean, number][]> {
  return page.$$eval('img', (imgs) =>
    imgs.map((i) => [i.getAttribute('src') ?? '', i.complete, i.naturalWidth] as [string, boolean, number]),
  );
}
