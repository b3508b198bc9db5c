'use strict';
// tower-next host cache: Next's cache handlers, with their entries kept by the Rust host
// (over a Unix socket), so that every worker of the pool, and every host sharing a store,
// answers from one cache, as one `next start` process answers from its memory.
// - The incremental cache (`cacheHandler`: pages, route handlers, fetch, ISR) is Next's own
//   file-system cache, whose in-memory layer is replaced by the host: an entry a worker
//   wrote is read by every worker, with Next's own checks (tags, lifetimes) on top. The
//   build's prerendered files are still read from disk when the host has no entry.
// - Next 16's `'use cache'` handlers (`DefaultCache`, `RemoteCache`) follow the built-in
//   in-memory handler's rules, with the entries in the host.
// - Revalidated tags are recorded in Next's tags manifest (a per-process map) and sent to
//   the host before the call returns; every reply of the host says how many tag changes
//   it has seen, and a worker that is behind catches up before it answers from the cache.
// The module exports the incremental handler class, with the `'use cache'` handler as
// `useCache` (undefined before Next 16).

const { AsyncLocalStorage } = require('async_hooks');
const http = require('http');
const path = require('path');
const v8 = require('v8');

const options = JSON.parse(process.env.TOWER_NEXT_OPTIONS || '{}');
const { socket } = options.hostCache;
const namespace = process.env.TOWER_NEXT_CACHE_NAMESPACE;
const nextDir = path.dirname(require.resolve('next/package.json', { paths: [options.dir] }));
const cacheDir = path.join(nextDir, 'dist/server/lib/incremental-cache');
const FileSystemCache = require(path.join(cacheDir, 'file-system-cache')).default;
const tags = require(path.join(cacheDir, 'tags-manifest.external'));
const { SharedCacheControls } = require(path.join(cacheDir, 'shared-cache-controls.external'));
const { tagsManifest } = tags;
// Response entries (pages, route handlers) live under this key prefix (Next 15.5 and 16).
const RESPONSE_KEY = '/route-cache/';
const RESPONSE_KINDS = new Set(['APP_PAGE', 'PAGES', 'APP_ROUTE']);
// Raised when the stored format changes: entries of another format are never read.
const FORMAT = 'v1';

const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
const base = `/${FORMAT}/${encodeURIComponent(namespace)}`;

// One request to the host. Resolves to { status, seq, body }.
function call(method, route, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const request = http.request(
      { socketPath: socket, agent, method, path: base + route, headers },
      (response) => {
        const chunks = [];
        response.on('data', (chunk) => chunks.push(chunk));
        response.on('end', () =>
          resolve({
            status: response.statusCode,
            seq: Number(response.headers['x-tower-next-tags-seq'] || 0),
            useCacheChanges: Number(response.headers['x-tower-next-use-cache-changes'] || 0),
            body: Buffer.concat(chunks),
          }),
        );
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

// How many times a 'use cache' entry had changed in the host when the request being
// rendered reached this worker (the host sends the count with every request). A render
// reads from copies in step with that count: a change another worker makes later is
// concurrent with the render, and one `next start` process could also have read the
// value before it. Outside a request, the highest count any request brought.
const USE_CACHE_CHANGES = Symbol.for('tower-next.host-use-cache-changes');
const requestChanges = new AsyncLocalStorage();
const useCacheChangesRequired = () => requestChanges.getStore() ?? (globalThis[USE_CACHE_CHANGES] || 0);

function entryRoute(kind, key) {
  return `/entry/${kind}/${encodeURIComponent(key)}`;
}

// The entry stored under `key`, decoded, or undefined. A store that cannot be reached,
// or an entry that does not decode, is a miss: Next renders again.
async function readEntry(kind, key, seen) {
  let reply;
  try {
    reply = await call('GET', entryRoute(kind, key));
  } catch (err) {
    console.error(`tower-next host cache: reading ${key} failed:`, err.message);
    return undefined;
  }
  await catchUp(reply.seq);
  if (seen) seen.useCacheChanges = reply.useCacheChanges;
  if (reply.status !== 200) return undefined;
  try {
    const entry = v8.deserialize(reply.body);
    if (entry && typeof entry === 'object' && 'value' in entry) return entry;
  } catch {}
  console.error(`tower-next host cache: the entry for ${key} does not decode; ignored`);
  return undefined;
}

// Stores an entry; `ttl` (seconds) bounds how long a shared store keeps it; `pathname`
// names the page of a response entry (other hosts' native answers leave it to Next).
async function writeEntry(kind, key, entry, ttl, pathname, seen) {
  const headers = {};
  if (pathname) headers['x-tower-next-pathname'] = encodeURI(pathname);
  if (typeof ttl === 'number' && ttl > 0 && Number.isFinite(ttl)) {
    headers['x-tower-next-ttl'] = String(Math.ceil(ttl));
  }
  try {
    const reply = await call('PUT', entryRoute(kind, key), v8.serialize(entry), headers);
    if (seen) seen.useCacheChanges = reply.useCacheChanges;
    if (reply.status >= 300) {
      console.error(`tower-next host cache: ${key} not stored: ${reply.body.toString('utf8').trim()}`);
    }
  } catch (err) {
    console.error(`tower-next host cache: storing ${key} failed:`, err.message);
  }
}

// How many tag changes this worker has applied, and the catch-up under way.
let seenTags = 0;
let catchingUp = null;

// Applies the tag changes the host has seen since this worker last asked, when the host
// says there are some.
async function catchUp(seq) {
  while (seq > seenTags) {
    if (!catchingUp) {
      catchingUp = call('GET', `/tags?since=${seenTags}`)
        .then((reply) => {
          if (reply.status !== 200) return;
          const changes = JSON.parse(reply.body.toString('utf8'));
          applyTags(changes.tags);
          seenTags = Math.max(seenTags, changes.seq);
        })
        .catch((err) => console.error('tower-next host cache: tags not read:', err.message))
        .finally(() => {
          catchingUp = null;
        });
    }
    const before = seenTags;
    await catchingUp;
    if (seenTags === before) return;
  }
}

// A tag's entry as some worker's Next recorded it: a time in Next 15 (the later wins), an
// object of times (`stale`, `expired`) in Next 16, where the later revalidation's fields
// replace the earlier's, as Next's own update does (`updateTag` after a `revalidateTag`
// with a profile moves `expired` back to now). `at` orders them: the revalidation's time.
function mergeTag(known, entry) {
  if (typeof entry === 'number') {
    return Math.max(typeof known === 'number' ? known : 0, entry);
  }
  if (!entry || typeof entry !== 'object') return known;
  const before = known && typeof known === 'object' ? known : {};
  return (entry.at ?? 0) >= (before.at ?? 0) ? { ...before, ...entry } : { ...entry, ...before };
}

function applyTags(entries) {
  for (const [tag, entry] of entries) {
    const merged = mergeTag(tagsManifest.get(tag), entry);
    if (merged !== undefined) tagsManifest.set(tag, merged);
  }
}

// Sends what this worker's Next recorded for `revalidated` tags to the host, which has
// them before the request that revalidated answers. `at` stands for a tag Next 15 kept
// at an earlier time (its file-system cache keeps a tag's first time).
async function publishTags(revalidated, at) {
  if (revalidated.length === 0) return;
  const entries = revalidated.map((tag) => {
    const entry = tagsManifest.get(tag);
    return [tag, typeof entry === 'object' && entry !== null ? { ...entry, at } : at];
  });
  applyTags(entries);
  try {
    const reply = await call('POST', '/tags', JSON.stringify(entries), {
      'content-type': 'application/json',
    });
    if (reply.status !== 200) throw new Error(reply.body.toString('utf8').trim());
  } catch (err) {
    console.error('tower-next host cache: revalidated tags not recorded:', err.message);
  }
}

// Next's file-system cache reads its in-memory layer synchronously, first thing in `get`:
// this stand-in hands it the entry the host returned for that one call.
const handoff = {
  entry: undefined,
  get(key) {
    return this.entry && this.entry[0] === key ? this.entry[1] : undefined;
  },
  set() {},
  has(key) {
    return this.get(key) !== undefined;
  },
  delete() {},
  remove() {},
};

class TowerNextHostCache extends FileSystemCache {
  constructor(ctx) {
    super({ ...ctx, maxMemoryCacheSize: 0 });
    FileSystemCache.memoryCache = handoff;
  }

  async get(key, ctx) {
    const hosted = await readEntry('incremental', key);
    // Next keeps an entry's lifetime in memory (set with the entry): a worker that reads
    // an entry another one wrote gives it the same lifetime, and Cache-Control.
    if (hosted && hosted.cacheControl && key.startsWith(RESPONSE_KEY)) {
      if (!SharedCacheControls.cacheControls.has(key)) {
        SharedCacheControls.cacheControls.set(key, hosted.cacheControl);
      }
    }
    handoff.entry = hosted ? [key, hosted] : undefined;
    try {
      return super.get(key, ctx);
    } finally {
      handoff.entry = undefined;
    }
  }

  // Kept by the host only: nothing is written to the build folder. `null` (a page's
  // `notFound`) is an entry too, as in Next's memory.
  async set(key, data, ctx) {
    const cacheControl = ctx && !ctx.fetchCache ? ctx.cacheControl : undefined;
    const lifetime = cacheControl || (ctx && typeof ctx.revalidate === 'number' ? ctx.revalidate : undefined);
    const ttl = cacheControl && typeof cacheControl.expire === 'number' ? cacheControl.expire : undefined;
    const pathnameOf = globalThis[Symbol.for('tower-next.pathname-of')];
    const page = data && RESPONSE_KINDS.has(data.kind) && pathnameOf ? pathnameOf(key) : undefined;
    await writeEntry('incremental', key, { value: data, lastModified: Date.now(), cacheControl }, ttl ?? lifetimeSeconds(lifetime), page);
  }

  async revalidateTag(...args) {
    const revalidated = [].concat(args[0] || []).filter((tag) => typeof tag === 'string');
    const at = Date.now();
    const result = await super.revalidateTag(...args);
    await publishTags(revalidated, at);
    return result;
  }
}

function lifetimeSeconds(lifetime) {
  if (typeof lifetime === 'number') return lifetime;
  if (lifetime && typeof lifetime.revalidate === 'number') return lifetime.revalidate;
  return undefined;
}

// Next 16's `'use cache'` handler interface, with the built-in handler's rules (entries
// past `revalidate` are misses, tag checks against the tags manifest), entries kept by
// the host. Next 15 has another interface: its own handler stays.
function createUseCacheHandler() {
  if (typeof tags.areTagsExpired !== 'function') return undefined;
  const { streamFromBuffer, streamToBuffer } = require(path.join(nextDir, 'dist/server/stream-utils/node-web-streams-helper'));
  // Sets under way in this worker: a get of the same key waits for them.
  const pendingSets = new Map();
  const now = () => performance.timeOrigin + performance.now();
  // This worker's copies of the host's 'use cache' entries. Next 16 stages a render by
  // what resolves at once, as a read from its built-in in-memory handler does, so a read
  // must not wait for the socket: before a request is rendered, the entries changed since
  // the worker last looked (the host counts changes, and sends the count with every
  // request) are copied here (`sync`). While the worker is in step with the count, its
  // copies are the host's entries and answer; a key it has no copy of is not in the host.
  const copies = new Map();
  let synced = 0;
  let syncing = null;
  // Counts of this worker's own writes not yet passed by `synced`.
  const ownChanges = new Set();
  // A copy this worker is writing to the host: it answers until the write lands.
  const WRITING = -1;
  let copiedBytes = 0;
  // Whether every entry of the host is copied here (a copy evicted or too large, or a
  // listing the host could not complete: no, and keys without a copy are read from it).
  let complete = true;
  const COPIES_LIMIT = 32 * 1024 * 1024;
  const forget = (cacheKey) => {
    const copy = copies.get(cacheKey);
    if (!copy) return;
    copies.delete(cacheKey);
    copiedBytes -= copy.entry.value.byteLength;
  };
  const keep = (cacheKey, entry, changes) => {
    forget(cacheKey);
    if (entry.value.byteLength > COPIES_LIMIT / 8) {
      // Not copied: reads of it go to the host.
      complete = false;
      return;
    }
    copies.set(cacheKey, { entry, changes });
    copiedBytes += entry.value.byteLength;
    for (const [oldest] of copies) {
      if (copiedBytes <= COPIES_LIMIT) break;
      forget(oldest);
      complete = false;
    }
  };
  const inStep = () => synced >= useCacheChangesRequired();
  // Copies the entries changed since `synced`, up to the host's count `target`.
  const sync = (target) => {
    if (target <= synced) return undefined;
    if (!syncing) {
      syncing = (async () => {
        const reply = await call('GET', `/use-cache?since=${synced}`);
        if (reply.status !== 200) return false;
        const changes = JSON.parse(reply.body.toString('utf8'));
        // The host no longer lists the changes since `synced` (or it shares a store this
        // worker has not listed yet): its keys are every entry there is.
        if (changes.reset) {
          for (const key of [...copies.keys()]) forget(key);
          complete = changes.complete;
        }
        await Promise.all(
          changes.keys.map(async (encoded) => {
            const cacheKey = decodeURIComponent(encoded);
            const hosted = await readEntry('use-cache', cacheKey);
            if (hosted) keep(cacheKey, hosted, changes.seq);
            else forget(cacheKey);
          }),
        );
        synced = Math.max(synced, changes.seq);
        for (const own of ownChanges) if (own <= synced) ownChanges.delete(own);
        return true;
      })()
        .catch((err) => {
          console.error("tower-next host cache: 'use cache' entries not copied:", err.message);
          return false;
        })
        .finally(() => {
          syncing = null;
        });
    }
    // A copy under way may have started before this count: then one more follows it (not
    // after a failure: reads then go to the host).
    return syncing.then((copied) => (copied && synced < target ? sync(target) : undefined));
  };
  // Stores a 'use cache' entry in the host (see `set`); the copy then follows the host's
  // count of changes.
  const writeToHost = async (cacheKey, stored) => {
    const seen = {};
    await writeEntry('use-cache', cacheKey, stored, stored.expire, undefined, seen);
    const copy = copies.get(cacheKey);
    if (copy && copy.entry === stored) {
      if (seen.useCacheChanges) keep(cacheKey, stored, seen.useCacheChanges);
      else forget(cacheKey);
    }
    // Changes that are this worker's own writes need no copying: past them, the worker is
    // still in step.
    if (seen.useCacheChanges > synced) ownChanges.add(seen.useCacheChanges);
    while (ownChanges.has(synced + 1)) ownChanges.delete(++synced);
  };
  const handler = {
    async get(cacheKey) {
      const pending = pendingSets.get(cacheKey);
      if (pending) await pending;
      const copy = copies.get(cacheKey);
      let hosted;
      if (copy && (copy.changes === WRITING || inStep())) {
        hosted = copy.entry;
      } else if (!copy && inStep() && complete) {
        return undefined;
      } else {
        forget(cacheKey);
        const seen = {};
        hosted = await readEntry('use-cache', cacheKey, seen);
        if (!hosted) return undefined;
        keep(cacheKey, hosted, seen.useCacheChanges);
      }
      const { value, ...entry } = hosted;
      if (entry.expire < 0 || now() > entry.timestamp + entry.revalidate * 1000) return undefined;
      if (tags.areTagsExpired(entry.tags, entry.timestamp)) return undefined;
      const revalidate = tags.areTagsStale(entry.tags, entry.timestamp) ? -1 : entry.revalidate;
      return { ...entry, revalidate, value: streamFromBuffer(value) };
    },
    // Resolves once this worker has the entry, as Next's in-memory handler does: Next
    // makes a concurrent read of the key (another render in this worker, e.g. the
    // re-render after a Server Action while a background prerender fills the key) join
    // this fill and wait for set() before its value resolves, and a wait for the socket
    // there moved the value out of the render's static stage (one stale-time row fewer
    // in the RSC payload than next start's). The host write goes on in the background;
    // Next does not hold the response for it either.
    async set(cacheKey, pendingEntry) {
      let done;
      const pending = new Promise((resolve) => (done = resolve));
      pendingSets.set(cacheKey, pending);
      const release = () => {
        if (pendingSets.get(cacheKey) === pending) pendingSets.delete(cacheKey);
        done();
      };
      let stored;
      try {
        const entry = await pendingEntry;
        // An `expire: 0` entry is dynamic: Next regenerates it on every read.
        if (entry.expire === 0) return;
        const value = await streamToBuffer(entry.value);
        const { value: _, ...metadata } = entry;
        stored = { ...metadata, value };
        // Reads of this worker have the entry now, as from Next's own memory; the host
        // has it once the write lands.
        keep(cacheKey, stored, WRITING);
      } catch (err) {
        console.error('tower-next host cache: a use-cache entry was not stored:', err && err.message);
        return;
      } finally {
        release();
      }
      writeToHost(cacheKey, stored);
    },
    // Once per request, before its first 'use cache' read: catches up only when the host
    // said (with the request) that tags changed, so that a read Next makes in a render is
    // not delayed by the socket when nothing changed, as with its built-in handler.
    async refreshTags() {
      const known = globalThis[Symbol.for('tower-next.host-tags-seq')] || 0;
      if (known > seenTags) await catchUp(known);
    },
    async getExpiration(revalidated) {
      let expiration = 0;
      for (const tag of revalidated) {
        const entry = tagsManifest.get(tag);
        if (entry && entry.expired) expiration = Math.max(expiration, entry.expired);
      }
      return expiration;
    },
    async updateTags(revalidated, durations) {
      const at = Math.round(now());
      for (const tag of revalidated) {
        const known = tagsManifest.get(tag) || {};
        if (durations) {
          const updated = { ...known, stale: at };
          if (durations.expire !== undefined) updated.expired = at + durations.expire * 1000;
          tagsManifest.set(tag, updated);
        } else {
          tagsManifest.set(tag, { ...known, expired: at });
        }
      }
      await publishTags(revalidated, at);
    },
  };
  return { handler, sync };
}

module.exports = TowerNextHostCache;
const useCache = createUseCacheHandler();
module.exports.useCache = useCache && useCache.handler;
// Called by the bridge before a request is rendered: a promise when entries are copied
// first, else undefined.
module.exports.syncUseCache = (target) => (useCache ? useCache.sync(target) : undefined);
// Runs `render` with the host's 'use cache' change count that came with its request.
module.exports.renderWithChanges = (changes, render) =>
  Number.isFinite(changes) ? requestChanges.run(changes, render) : render();
