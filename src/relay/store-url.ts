/** The store URL's check, apart from store-redis.ts so that checking options never loads ioredis. */

/** Check a store URL: redis://[user:pass@]host:port[/db] (or rediss://). Throws RangeError. */
export function checkStoreUrl(url: string): void {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new RangeError('store must be a URL like redis://HOST:PORT[/DB]');
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new RangeError('store must be a redis:// or rediss:// URL');
  if (u.hostname === '') throw new RangeError('store URL needs a host');
  if (u.pathname !== '' && u.pathname !== '/' && !/^\/\d{1,2}$/.test(u.pathname)) throw new RangeError('store URL path must be a database number, e.g. /0');
}
