'use strict';
// tower-next bridge: the Next.js custom server of the docs, listening on a Unix socket that
// only the Rust host can reach. The host passes options in TOWER_NEXT_OPTIONS and reads one
// status line (prefixed with MARK) from stdout: `ready` with what Rust needs, or `error`.

const fs = require('fs');
const http = require('http');
const path = require('path');
const querystring = require('querystring');
const { parse } = require('url');

const MARK = '@@tower-next@@ ';
const HEADER_PREFIX = 'x-tower-next-';
const GENERATION_HEADER = HEADER_PREFIX + 'generation';
const options = JSON.parse(process.env.TOWER_NEXT_OPTIONS || '{}');

// Writes to a pipe are synchronous on Linux: a line is in the pipe before the response of
// the request that caused it is written to the socket.
function announce(message) {
  process.stdout.write(MARK + JSON.stringify(message) + '\n');
}

// Cache events tell the host which prerendered responses Next.js has replaced or
// invalidated, so that the host never answers with an outdated copy. Each event has a
// number, taken when the change begins; every response carries the highest number taken
// before its headers, and the host applies every event up to it (events may arrive out of
// order: a write takes a number, then the time of the write) before passing it on.
let generation = Number(options.generationBase) || 0;

// With a pool, a worker may answer from an entry another worker wrote to the shared
// cache. Before it writes, a worker notes `<slot> <number>` of the event that will report
// the write in the pool's journal; every response carries the journal's length, and the
// host applies every event noted in it before passing the response on.
const JOURNAL_HEADER = HEADER_PREFIX + 'journal';
const journal = options.journal || null;
if (journal) {
  // A restarted worker continues above whatever its slot noted before (a write the last
  // process noted but never reported).
  try {
    for (const line of fs.readFileSync(journal, 'utf8').split('\n')) {
      const [slot, noted] = line.split(' ').map(Number);
      if (slot === options.slot && noted > generation) generation = noted;
    }
  } catch {}
}

function takeNumber() {
  generation += 1;
  return generation;
}

function emit(number, event) {
  announce({ type: 'cache', generation: number, ...event });
}

// A cache write: numbered (and noted in the journal) before it starts, reported when it is
// done. A failed write is reported as a removal: Next may still answer from an older entry,
// so the host leaves the page to Node.
async function reportWrite(pathname, describe, write) {
  const number = takeNumber();
  if (journal) fs.appendFileSync(journal, `${options.slot} ${number}\n`);
  const at = Date.now();
  const report = (failed) => {
    let entry = { kind: null };
    if (!failed) {
      try {
        entry = describe();
      } catch (err) {
        console.error('tower-next bridge: a cache entry could not be described:', err);
      }
    }
    emit(number, { event: 'set', pathname, at, ...entry });
  };
  let result;
  try {
    result = await write();
  } catch (err) {
    report(true);
    throw err;
  }
  report(false);
  return result;
}

// Next.js writes and invalidates its response cache through a cache handler: the one
// next.config names (`cacheHandler`), else the `FetchCache` class registered under
// `Symbol.for('@next/cache-handlers')`, else its file-system cache. Next's own server and
// the route modules' bundled copies all pick it that way. The bridge puts a subclass of the
// handler in use there, which reports each `set` and `revalidateTag` through a hook.
const CACHE_HOOK = Symbol.for('tower-next.cache-events');
const HOST_TAGS_SEQ = Symbol.for('tower-next.host-tags-seq');
const HOST_USE_CACHE_CHANGES = Symbol.for('tower-next.host-use-cache-changes');
const NEXT_CACHE_HANDLERS = Symbol.for('@next/cache-handlers');

function cacheHandlerSource(base) {
  return `'use strict';
const Base = require(${JSON.stringify(base)});
const Handler = Base.default || Base;
const hook = () => globalThis[Symbol.for('tower-next.cache-events')];
module.exports = class TowerNextCacheHandler extends Handler {
  async set(key, data, ctx) {
    const report = hook();
    if (!report) return super.set(key, data, ctx);
    return report.set(key, data, ctx || {}, () => super.set(key, data, ctx));
  }
  async revalidateTag(...args) {
    const report = hook();
    if (!report) return super.revalidateTag(...args);
    return report.revalidateTag(args[0], args[1], () => super.revalidateTag(...args));
  }
};
`;
}

// Puts the host's cache in use: the incremental handler unless next.config names one, and
// the 'use cache' handlers unless one is registered already (next.config's cacheHandlers
// are set by Next after this, over these).
let hostCacheModule = null;

function installHostCache(config, namespace) {
  let hostCache;
  try {
    // Entries of one build never meet another build's.
    process.env.TOWER_NEXT_CACHE_NAMESPACE = namespace;
    hostCache = require(options.hostCache.handler);
  } catch (err) {
    console.error(
      'tower-next: the host cache handler does not load with this Next.js version; ' +
        'each worker keeps its own cache, so revalidations reach one worker only:',
      err,
    );
    return;
  }
  hostCacheModule = hostCache;
  const registered = globalThis[NEXT_CACHE_HANDLERS] || {};
  // Registered, not named in the config: Next imports a configured handler again on every
  // request (twice, about 40 µs of the worker's time), a registered one never.
  const fetchCache = config.cacheHandler || registered.FetchCache ? {} : { FetchCache: hostCache };
  const useCache =
    hostCache.useCache && !registered.DefaultCache
      ? { DefaultCache: hostCache.useCache, RemoteCache: registered.RemoteCache || hostCache.useCache }
      : {};
  globalThis[NEXT_CACHE_HANDLERS] = { ...registered, ...fetchCache, ...useCache };
}

// Installs the reporting handler. Returns whether the worker reports cache events (never
// in dev mode, nor when the host does not answer natively).
function installCacheEvents(config, nextDir) {
  if (options.dev || !options.cacheEvents) return false;
  const configured = config.cacheHandler;
  const registered = globalThis[NEXT_CACHE_HANDLERS];
  const hostRegistered = hostCacheModule && registered && registered.FetchCache === hostCacheModule;
  if (!configured && registered && registered.FetchCache && !hostRegistered) {
    console.error('tower-next bridge: a FetchCache is registered already; prerendered pages are left to Next.js');
    return false;
  }
  const base = configured
    ? path.resolve(options.dir, configured)
    : hostRegistered
      ? options.hostCache.handler
      : path.join(nextDir, 'dist/server/lib/incremental-cache/file-system-cache.js');
  // One per process: the pool's shared handler lives in the same folder, and the
  // workers start side by side.
  const file = path.join(options.privateDir, `cache-events-${process.pid}.cjs`);
  let Handler;
  try {
    // Next's server modules expect the environment its server sets up before they load.
    require(path.join(nextDir, 'dist/server/node-environment'));
    fs.writeFileSync(file, cacheHandlerSource(base));
    Handler = require(file);
    if (typeof Handler !== 'function') throw new Error('not a class');
  } catch (err) {
    console.error('tower-next bridge: no cache events, prerendered pages are left to Next.js:', err);
    return false;
  }
  globalThis[CACHE_HOOK] = {
    set(key, data, ctx, write) {
      if (ctx.fetchCache || typeof key !== 'string' || (data && (data.kind === 'FETCH' || data.kind === 'IMAGE'))) {
        return write();
      }
      return reportWrite(pathnameOf(key), () => describeEntry(data, ctx), write);
    },
    revalidateTag(tags, durations, revalidate) {
      // Reported at once, before Next applies it and before the response of the request
      // that called it is sent (Next runs it alongside the response): from then on the
      // host leaves the tagged pages to Next, and the host's cache has the tags' new
      // states, which every worker reads before it answers from the cache.
      const at = Date.now();
      const revalidated = [].concat(tags).filter((t) => typeof t === 'string');
      emit(takeNumber(), {
        event: 'revalidate-tag',
        at,
        tags: revalidated,
        states: revalidated.map((tag) => [tag, tagState(at, durations)]),
      });
      return revalidate();
    },
  };
  if (configured) {
    // Next imports a configured handler on every request, as it does under `next start`:
    // the app's own handler stays in the config.
    config.cacheHandler = file;
  } else {
    globalThis[NEXT_CACHE_HANDLERS] = { ...(registered || {}), FetchCache: Handler };
  }
  return true;
}

// The host cache names the page of a response entry it shares with other hosts.
globalThis[Symbol.for('tower-next.pathname-of')] = pathnameOf;

// A revalidated tag's state as Next records it in its tags manifest: the time in Next 15;
// in Next 16, stale at once and expired after the profile's `expire`, or expired at once
// (`updateTag`, or no profile), with `at`, the revalidation's time, which orders states
// (see host-cache.js, applyTags).
const TAGS_HAVE_STATES = (() => {
  try {
    const nextDir = path.dirname(require.resolve('next/package.json', { paths: [options.dir] }));
    const tags = require(path.join(nextDir, 'dist/server/lib/incremental-cache/tags-manifest.external'));
    return typeof tags.areTagsExpired === 'function';
  } catch {
    return false;
  }
})();

function tagState(at, durations) {
  if (!TAGS_HAVE_STATES) return at;
  if (!durations) return { at, expired: at };
  const state = { at, stale: at };
  if (durations.expire !== undefined) state.expired = at + durations.expire * 1000;
  return state;
}

// The page path of a response-cache key: `/route-cache/<kind>/<owner>/$/about` (Next 15.5)
// or `/about`; `/index` stands for `/` (Next's normalizePagePath).
function pathnameOf(key) {
  const marker = key.indexOf('/$/');
  const page = marker === -1 ? key : key.slice(marker + 2);
  if (page === '/index') return '/';
  if (page.startsWith('/index/')) return page.slice('/index'.length);
  return page;
}

// What the host needs of a response-cache entry to answer as Next.js would.
function describeEntry(data, ctx) {
  const cacheControl = ctx.cacheControl || (ctx.revalidate !== undefined ? { revalidate: ctx.revalidate } : null);
  const entry = {
    kind: (data && data.kind) || null,
    revalidate: cacheControl ? cacheControl.revalidate : null,
    expire: cacheControl && cacheControl.expire !== undefined ? cacheControl.expire : null,
    fallback: !!ctx.isFallback,
  };
  if (!data || (data.kind !== 'APP_PAGE' && data.kind !== 'PAGES')) return entry;
  entry.html = typeof data.html === 'string' ? data.html : null;
  entry.headers = data.headers || null;
  entry.status = typeof data.status === 'number' ? data.status : null;
  entry.postponed = typeof data.postponed === 'string';
  // The state a worker resumes the render from, after the host sent the shell.
  if (entry.postponed) entry.postponedState = data.postponed;
  if (data.kind === 'APP_PAGE') {
    entry.rsc = Buffer.isBuffer(data.rscData) ? data.rscData.toString('base64') : null;
    // Next 16: the segment prefetch payloads, by segment path (`/_tree`).
    if (data.segmentData instanceof Map) {
      entry.segments = {};
      for (const [segment, payload] of data.segmentData) {
        if (Buffer.isBuffer(payload)) entry.segments[segment] = payload.toString('base64');
      }
    }
  } else {
    entry.pageData = data.pageData !== undefined ? JSON.stringify(data.pageData) : null;
  }
  return entry;
}

// The rest of a partially prerendered page whose static shell the host has sent: the
// request's body is the shell's postponed state. Next resumes the render from the state
// it finds in its request meta (as its own `next start` does after sending a cached
// shell) and answers only what follows the shell.
function resumeRender(req, res, handle) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('error', reject);
    req.on('end', () => {
      const meta = Symbol.for('NextInternalRequestMeta');
      req[meta] = { ...(req[meta] || {}), postponed: Buffer.concat(chunks).toString('utf8') };
      req.method = 'GET';
      delete req.headers['content-length'];
      delete req.headers['content-type'];
      delete req.headers['transfer-encoding'];
      resolve(handle(req, res));
    });
  });
}

function journalLength() {
  try {
    return fs.statSync(journal).size;
  } catch {
    return 0;
  }
}

function fail(code, message) {
  announce({ type: 'error', code, message });
  process.exit(1);
}

// Never outlive the host: it holds our stdin open, and the pipe closes however it exits.
// A host killed with SIGKILL cannot clean up, so the worker removes the private folder.
function hostGone() {
  try {
    fs.rmSync(options.privateDir, { recursive: true, force: true });
  } catch {}
  process.exit(0);
}
process.stdin.on('end', hostGone);
process.stdin.on('error', hostGone);
process.stdin.resume();

// `output: 'standalone'`: a folder with server.js, its own traced node_modules and the
// config the build recorded. Next runs from there, as server.js would run it; its
// `.next/static` and `public/` are not copied there, and Rust serves them.
function isStandaloneFolder(dir) {
  return fs.existsSync(path.join(dir, 'server.js')) && fs.existsSync(path.join(dir, '.next/required-server-files.json'));
}

// Next reads public/ and .next/static from the folder it runs in, also for the images
// its optimizer fetches in-process, and standalone output copies neither (Next's docs
// say to copy them): the project's are linked in when the folder lacks them.
function linkIntoStandalone(projectDir, distDir, standalone) {
  const links = [
    [path.join(projectDir, 'public'), path.join(standalone, 'public')],
    [path.join(distDir, 'static'), path.join(standalone, path.relative(projectDir, distDir), 'static')],
  ];
  for (const [target, link] of links) {
    if (!fs.existsSync(target) || fs.existsSync(link)) continue;
    try {
      fs.symlinkSync(target, link, 'dir');
    } catch (err) {
      // Another worker of the pool made it meanwhile.
      if (err.code !== 'EEXIST') console.error(`tower-next bridge: cannot link ${link} to ${target}:`, err.message);
    }
  }
}

function useStandaloneConfig(dir) {
  const recorded = JSON.parse(fs.readFileSync(path.join(dir, '.next/required-server-files.json'), 'utf8')).config;
  process.env.__NEXT_PRIVATE_STANDALONE_CONFIG = JSON.stringify(recorded);
}

function resolveNext(dir) {
  let packageJson;
  try {
    packageJson = require.resolve('next/package.json', { paths: [dir] });
  } catch {
    fail('next-not-installed', `cannot resolve 'next' from ${dir}`);
  }
  return { nextDir: path.dirname(packageJson), nextVersion: require(packageJson).version };
}

async function loadConfigOrFail(nextDir, dir) {
  try {
    return await loadResolvedConfig(nextDir, dir);
  } catch (err) {
    // The file, line and message lead the stack; the frames inside Node are noise.
    const detail = String((err && err.stack) || err).split('\n').filter((line) => line.trim()).slice(0, 4).join('\n');
    fail('config', `could not load next.config (fix the file named below, or pass conf): ${detail}`);
  }
}

// Loads the config Next will run with and makes Next's router use it. Next 15.5's custom
// server drops `conf` on the way to its router, which loads next.config itself; its config
// cache hands that router the object loaded here, so `conf` is applied to that object.
async function loadResolvedConfig(nextDir, dir) {
  const { default: loadConfig } = require(path.join(nextDir, 'dist/server/config'));
  const constants = require(path.join(nextDir, 'dist/shared/lib/constants'));
  const phase = options.dev ? constants.PHASE_DEVELOPMENT_SERVER : constants.PHASE_PRODUCTION_SERVER;
  let fileConfig = null;
  try {
    // Next's warnings about the config (as `next start` prints them), once per pool.
    fileConfig = await loadConfig(phase, dir, { silent: !!options.quiet || (options.slot || 0) > 0 });
  } catch (err) {
    if (!options.conf) throw err;
  }
  let config = fileConfig;
  if (options.conf) {
    const custom = await loadConfig(phase, dir, { customConfig: options.conf, silent: true });
    if (fileConfig) {
      for (const key of Object.keys(fileConfig)) delete fileConfig[key];
      Object.assign(fileConfig, custom);
    } else {
      config = custom;
    }
  }
  const cached = fileConfig && (await loadConfig(phase, dir, { silent: true })) === fileConfig;
  return { config, shared: cached };
}

function readBuildId(distDir) {
  try {
    return fs.readFileSync(path.join(distDir, 'BUILD_ID'), 'utf8').trim();
  } catch {
    return null;
  }
}

// The Next.js version that made the build (Next 15 and 16 record it here).
function buildNextVersion(distDir) {
  try {
    return JSON.parse(fs.readFileSync(path.join(distDir, 'diagnostics/framework.json'), 'utf8')).version || null;
  } catch {
    return null;
  }
}

// The middleware (Next 16: proxy) matchers in dev, where the build manifest is written
// only once the middleware has compiled: read by Next's own static analysis of the file.
async function devMiddlewareMatchers(nextDir, config) {
  const extensions = config.pageExtensions || ['tsx', 'ts', 'jsx', 'js'];
  for (const base of [options.dir, path.join(options.dir, 'src')]) {
    for (const name of ['proxy', 'middleware']) {
      for (const extension of extensions) {
        const file = path.join(base, `${name}.${extension}`);
        if (!fs.existsSync(file)) continue;
        try {
          const { getPageStaticInfo } = require(path.join(nextDir, 'dist/build/analysis/get-page-static-info'));
          const info = await getPageStaticInfo({
            pageFilePath: file,
            nextConfig: config,
            isDev: true,
            page: `/${name}`,
            pageType: 'root',
          });
          const matchers = info && info.middleware && info.middleware.matchers;
          // No matcher: the middleware runs for every path.
          return matchers ? matchers.map((m) => m.regexp) : ['^/.*$'];
        } catch (err) {
          console.error(`tower-next bridge: could not read the matcher of ${file}:`, err);
          return ['^/.*$'];
        }
      }
    }
  }
  return [];
}

async function main() {
  let appDir = options.dir;
  if (!options.dev && isStandaloneFolder(appDir)) useStandaloneConfig(appDir);
  let { nextDir, nextVersion } = resolveNext(appDir);
  let { config, shared: configShared } = await loadConfigOrFail(nextDir, appDir);
  const userFileSystemRoutes = config.useFileSystemPublicRoutes !== false;
  // The build output Rust reads: a project's own, also when Next runs from its standalone
  // folder (whose copy lacks static/).
  const distDir = path.resolve(appDir, config.distDir || '.next');
  const standalone = path.join(distDir, 'standalone');
  if (!options.dev && appDir === options.dir && config.output === 'standalone' && isStandaloneFolder(standalone)) {
    linkIntoStandalone(options.dir, distDir, standalone);
    appDir = standalone;
    useStandaloneConfig(appDir);
    ({ nextDir, nextVersion } = resolveNext(appDir));
    ({ config, shared: configShared } = await loadConfigOrFail(nextDir, appDir));
  }

  let buildId = 'development';
  if (!options.dev) {
    buildId = readBuildId(distDir);
    if (!buildId) fail('no-build', `${path.join(distDir, 'BUILD_ID')} does not exist`);
    const builtWith = buildNextVersion(distDir);
    if (builtWith && builtWith !== nextVersion) {
      fail('no-build', `the build was made by Next.js ${builtWith}, but ${nextVersion} is installed`);
    }
  }

  // useFileSystemPublicRoutes is enforced by the Rust layer. Next itself keeps it on, since
  // with it off Next 15 refuses app.render() as well (every page and API route, and
  // app.render, answer 404 then).
  config.useFileSystemPublicRoutes = true;
  // Every worker answers from one cache, kept by the host (see host-cache.js): Next's
  // incremental cache and, on Next 16, its 'use cache' handlers. An app with its own
  // cacheHandler or cacheHandlers keeps them: making them shared is their job.
  const cacheHandlerBefore = config.cacheHandler;
  // Next 16 gives every build the same id when deploymentId is set without
  // generateBuildId: the deployment names the space too (AppInfo::cache_namespace).
  if (options.hostCache) {
    installHostCache(config, config.deploymentId ? `${buildId}@${config.deploymentId}` : buildId);
  }
  // Native responses need to know of every change to Next's response cache: a subclass
  // of the configured handler (the shared one above, the app's own, or Next's) reports it.
  const cacheEvents = installCacheEvents(config, nextDir);
  const handlerChanged = config.cacheHandler !== cacheHandlerBefore;
  if (!configShared && (options.conf || !userFileSystemRoutes || handlerChanged)) {
    // Without a shared config cache, hand Next the whole resolved config the way its
    // standalone server does.
    process.env.__NEXT_PRIVATE_STANDALONE_CONFIG = JSON.stringify(config);
  }
  const conf = options.conf ? config : undefined;

  // Only an app that can use 'use cache' pays for keeping each request's change count
  // (an AsyncLocalStorage costs every promise of the render a little).
  const experimental = config.experimental || {};
  const useCacheInUse =
    !!hostCacheModule &&
    !!(config.cacheComponents || experimental.cacheComponents || experimental.useCache || experimental.dynamicIO);
  const server = http.createServer();
  const next = require(path.join(nextDir, 'dist/server/next.js'));
  const createApp = next.default || next;
  const appOptions = {
    dev: !!options.dev,
    dir: appDir,
    conf,
    quiet: !!options.quiet,
    hostname: options.hostname,
    port: options.port,
    httpServer: server,
  };
  if (options.turbo != null) {
    appOptions.turbo = options.turbo;
    appOptions.turbopack = options.turbo;
    if (!options.turbo) appOptions.webpack = true;
  }
  const app = createApp(appOptions);
  await app.prepare();
  const handle = app.getRequestHandler();
  // Next attaches its upgrade handler on the first HTTP request; attach it now, so that
  // an HMR socket opened before any page request works too.
  if (typeof app.setupWebSocketHandler === 'function') app.setupWebSocketHandler(server);
  const middlewareMatchers = () => (options.dev ? devMiddlewareMatchers(nextDir, config) : Promise.resolve([]));

  server.on('request', (req, res) => {
    // The host's health check: answered here, so it shows that the event loop turns.
    if (req.headers[HEADER_PREFIX + 'health']) {
      res.writeHead(204).end();
      return;
    }
    // Instructions from the host travel in x-tower-next-* headers. The host strips them
    // from client requests; Next never sees them.
    if (req.headers[HEADER_PREFIX + 'control'] === 'middleware-matchers') {
      middlewareMatchers().then((matchers) => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify(matchers));
      });
      return;
    }
    const resume = req.headers[HEADER_PREFIX + 'resume'] === '1';
    const render = req.headers[HEADER_PREFIX + 'render'];
    const query = req.headers[HEADER_PREFIX + 'query'];
    // How many tag changes the host's cache has seen (see host-cache.js, refreshTags).
    const tagsSeq = Number(req.headers[HEADER_PREFIX + 'tags-seq']);
    if (tagsSeq > (globalThis[HOST_TAGS_SEQ] || 0)) globalThis[HOST_TAGS_SEQ] = tagsSeq;
    const useCacheChanges = Number(req.headers[HEADER_PREFIX + 'use-cache-changes']);
    if (useCacheChanges > (globalThis[HOST_USE_CACHE_CHANGES] || 0)) {
      globalThis[HOST_USE_CACHE_CHANGES] = useCacheChanges;
    }
    const notFound = req.headers[HEADER_PREFIX + 'not-found'];
    for (const name of Object.keys(req.headers)) {
      if (name.startsWith(HEADER_PREFIX)) delete req.headers[name];
    }
    if (cacheEvents) {
      const writeHead = res.writeHead;
      res.writeHead = function () {
        if (!this.headersSent) {
          this.setHeader(GENERATION_HEADER, String(generation));
          if (journal) this.setHeader(JOURNAL_HEADER, String(journalLength()));
        }
        return writeHead.apply(this, arguments);
      };
    }
    const dispatch = () => {
      if (resume) return resumeRender(req, res, handle);
      if (notFound) return app.render404(req, res, parse(req.url, true));
      if (render) {
        // Next builds the page's URL from parsedUrl.search when present, ignoring `query`.
        const renderQuery = querystring.parse(query || '');
        const renderUrl = { ...parse(req.url, true), search: null, path: null, href: null, query: renderQuery };
        return app.render(req, res, render, renderQuery, renderUrl);
      }
      // Next parses the URL itself, as under `next start`: Node's legacy url.parse()
      // turns backslashes into slashes, and Next would not redirect them (308) then.
      return handle(req, res);
    };
    let work;
    try {
      // The 'use cache' entries other workers changed, copied here before Next renders
      // (see host-cache.js): only when the host's count moved.
      const synced = hostCacheModule && hostCacheModule.syncUseCache(useCacheChanges);
      const render = useCacheInUse
        ? () => hostCacheModule.renderWithChanges(useCacheChanges, dispatch)
        : dispatch;
      work = synced ? synced.then(render) : render();
    } catch (err) {
      work = Promise.reject(err);
    }
    Promise.resolve(work).catch((err) => {
      console.error('tower-next bridge: request failed:', err);
      if (!res.headersSent) {
        res.statusCode = 500;
        res.setHeader('content-type', 'text/plain; charset=utf-8');
        res.end('Internal Server Error');
      } else {
        res.destroy(err);
      }
    });
  });

  // The socket file survives a crash; a stale one would make listen() fail.
  try {
    fs.unlinkSync(options.socket);
  } catch {}
  server.keepAliveTimeout = 60_000;
  const initialMatchers = await middlewareMatchers();
  server.listen(options.socket, () => {
    announce({
      middlewareMatchers: initialMatchers,
      type: 'ready',
      nextVersion,
      buildId,
      config: {
        basePath: config.basePath || '',
        assetPrefix: config.assetPrefix || '',
        trailingSlash: !!config.trailingSlash,
        useFileSystemPublicRoutes: userFileSystemRoutes,
        distDir,
        // The folder Next runs in keeps the cache (the standalone folder's, when so).
        cacheDir: path.join(path.resolve(appDir, config.distDir || '.next'), 'cache'),
        pageExtensions: config.pageExtensions || ['tsx', 'ts', 'jsx', 'js'],
        // Pages Router i18n, as route ownership needs it (see src/routes/locale.rs).
        i18n: config.i18n
          ? {
              locales: config.i18n.locales || [],
              defaultLocale: config.i18n.defaultLocale,
              localeDetection: config.i18n.localeDetection !== false,
              domainDefaultLocales: (config.i18n.domains || []).map((d) => d.defaultLocale),
            }
          : null,
        caseSensitiveRoutes: !!(config.experimental && config.experimental.caseSensitiveRoutes),
        poweredByHeader: config.poweredByHeader !== false,
        compress: config.compress !== false,
        generateEtags: config.generateEtags !== false,
        output: config.output || null,
        expireTime: typeof config.expireTime === 'number' ? config.expireTime : null,
        validateRscRequestHeaders: !!(config.experimental && config.experimental.validateRSCRequestHeaders),
        deploymentId: config.deploymentId || null,
        partialPrerendering: !!(config.experimental && (config.experimental.ppr || config.experimental.cacheComponents || config.experimental.dynamicIO)) || !!config.cacheComponents,
      },
      cacheEvents,
    });
  });

  process.on('SIGTERM', () => {
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 5000).unref();
  });
}

main().catch((err) => fail('start', (err && err.stack) || String(err)));
