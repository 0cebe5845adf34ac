/**
 * Headless Chromium for the page's end-to-end tests: Debian's `chromium` (installed by .ci/run
 * when missing) driven by playwright-core, never a downloaded browser. Kept off the network: no
 * DNS but for the loopback relay, no component updates, no background networking, no first run,
 * no Google services.
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM = process.env.TSC_CROC_CHROMIUM ?? '/usr/bin/chromium';

/** Why the browser tests cannot run here, or undefined when they can. */
export function browserSkip(): string | undefined {
  return existsSync(CHROMIUM) ? undefined : `no Chromium at ${CHROMIUM} (apt-get install chromium; .ci/run does when it can): the browser tests are skipped`;
}

/** Flags that keep Chromium off every network but the loopback relay. */
export const OFFLINE_FLAGS = [
  // every host name fails to resolve without a lookup, but the loopback literals
  '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost',
  '--no-proxy-server',
  '--no-first-run',
  '--no-default-browser-check',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-default-apps',
  '--disable-domain-reliability',
  '--disable-client-side-phishing-detection',
  '--disable-sync',
  '--disable-breakpad',
  '--disable-crash-reporter',
  '--metrics-recording-only',
  '--safebrowsing-disable-auto-update',
  '--disable-features=OptimizationHints,OptimizationGuideModelDownloading,MediaRouter,DialMediaRouteProvider,Translate,AutofillServerCommunication,CertificateTransparencyComponentUpdater,InterestFeedContentSuggestions,NetworkTimeServiceQuerying,PrivacySandboxSettings4',
  '--password-store=basic',
  '--use-mock-keychain',
];

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: OFFLINE_FLAGS, timeout: 60_000 });
}
