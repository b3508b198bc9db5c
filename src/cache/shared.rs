//! The store several hosts share (Redis or Valkey): entries written through, revalidated
//! tags merged (times only move forward), and every change announced on one stream that
//! each host reads from where it stopped.
//!
//! Keys (prefix `tower-next:`):
//! - `tower-next:<build>:<kind>:<key>`: an entry, with the lifetime the worker gave;
//! - `tower-next:<build>:tags`: a hash, tag → state as Next records it;
//! - `tower-next:changes`: the stream of changes (`host`, `build`, `change`, `data`);
//! - `tower-next:epoch`: set by the first host to connect. A new epoch means the store
//!   lost its data (restarted without persistence): every host then resyncs.
//!
//! A stream rather than pub/sub: a host that reconnects reads what it missed, so no
//! invalidation is lost to a reconnect. When it cannot prove it saw every change (the
//! epoch changed, or the stream was trimmed past where it stopped), it forgets its local
//! entries and reads every tag again before it answers from the cache.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use redis::{AsyncConnectionConfig, Client, aio::ConnectionManager, streams::StreamReadReply};
use serde_json::Value;

use super::{
    Cache, USE_CACHE, Write, now_ms,
    store::{EntryKey, TagStates},
};

const PREFIX: &str = "tower-next:";
/// How long a request may wait for the shared store before the host goes on without it.
pub(crate) const STORE_TIMEOUT: Duration = Duration::from_millis(100);
/// Entries without a lifetime are kept this long (seconds): a store with
/// `maxmemory-policy volatile-lru` then evicts them, and never the tags or the stream.
const DEFAULT_TTL: u64 = 14 * 24 * 3600;
/// Changes the stream keeps (approximately) for hosts that reconnect.
const STREAM_LENGTH: u64 = 100_000;

/// Merges tag states into the tags hash as `store::merge` does: in Next 15 the later time,
/// in Next 16 the later revalidation's fields (by `at`) over the earlier's, so two hosts
/// revalidating at once agree, whatever order their writes arrive in.
const MERGE_TAGS: &str = r"
for i = 1, #ARGV, 2 do
  local state = cjson.decode(ARGV[i + 1])
  local known = redis.call('HGET', KEYS[1], ARGV[i])
  if known then
    known = cjson.decode(known)
    if type(state) == 'number' and type(known) == 'number' then
      if known > state then state = known end
    elseif type(state) == 'table' and type(known) == 'table' then
      local earlier, later = known, state
      if (state.at or 0) < (known.at or 0) then earlier, later = state, known end
      for field, time in pairs(later) do earlier[field] = time end
      state = earlier
    end
  end
  redis.call('HSET', KEYS[1], ARGV[i], cjson.encode(state))
end
return 1
";

/// The connection to the shared store, and what this host could not send yet.
pub(crate) struct SharedStore {
    client: Client,
    writes: ConnectionManager,
    /// This host's name in the stream (its own changes are not applied twice).
    host: String,
    /// Whether the host has read every change so far (it answers from the store only then).
    synced: AtomicBool,
    /// Tag changes not yet in the store (it was unreachable): sent on reconnect.
    unsent: Mutex<VecDeque<(String, TagStates)>>,
    merge_tags: redis::Script,
}

impl SharedStore {
    /// A store at `url` (`redis://host:port/db`). Connects in the background.
    ///
    /// # Errors
    ///
    /// A message when the URL is not a Redis URL.
    pub(crate) fn new(url: &str) -> Result<SharedStore, String> {
        let client = Client::open(url).map_err(|err| format!("shared cache {url}: {err}"))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_response_timeout(Some(STORE_TIMEOUT))
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_max_delay(Duration::from_secs(2));
        let writes = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|err| format!("shared cache {url}: {err}"))?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        Ok(SharedStore {
            client,
            writes,
            host: format!("{}-{:x}", std::process::id(), nanos),
            synced: AtomicBool::new(false),
            unsent: Mutex::default(),
            merge_tags: redis::Script::new(MERGE_TAGS),
        })
    }

    fn entry_key(key: &EntryKey) -> String {
        format!("{PREFIX}{}:{}:{}", key.namespace, key.kind, key.key)
    }

    fn tags_key(namespace: &str) -> String {
        format!("{PREFIX}{namespace}:tags")
    }

    /// The `'use cache'` keys of a build the store holds, each scored with the time (unix
    /// seconds) its entry expires: a host lists them to its workers (see
    /// `Cache::use_cache_changes_since`).
    fn use_cache_index_key(namespace: &str) -> String {
        format!("{PREFIX}{namespace}:use-cache-keys")
    }

    fn stream_key() -> String {
        format!("{PREFIX}changes")
    }

    /// Whether the host has every change of the store: until then it neither reads nor
    /// writes entries there.
    pub(crate) fn synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    /// The entry, if the store has it and answers in time.
    pub(crate) async fn get(&self, key: &EntryKey) -> Option<Bytes> {
        let mut command = redis::cmd("GET");
        command.arg(Self::entry_key(key));
        let entry: Option<Vec<u8>> = self.read(&command, "an entry").await?;
        entry.map(Bytes::from)
    }

    /// `command`'s answer, or `None` when the store is not in step, fails, or does not
    /// answer within [`STORE_TIMEOUT`] (the request goes on without it). `what` names the
    /// read in the log.
    async fn read<T: redis::FromRedisValue>(&self, command: &redis::Cmd, what: &str) -> Option<T> {
        if !self.synced() {
            return None;
        }
        let mut connection = self.writes.clone();
        match tokio::time::timeout(STORE_TIMEOUT, command.query_async::<T>(&mut connection)).await {
            Ok(Ok(answer)) => Some(answer),
            Ok(Err(err)) => {
                tracing::debug!(error = %err, what, "shared cache: read failed; served from this host");
                None
            }
            Err(_) => {
                tracing::debug!(what, "shared cache: read timed out; served from this host");
                None
            }
        }
    }

    /// Writes an entry through and announces it (other hosts forget their copy).
    pub(crate) async fn put(&self, write: Write) {
        let Write {
            key,
            value,
            ttl,
            pathname,
        } = write;
        if !self.synced() {
            return;
        }
        let mut connection = self.writes.clone();
        let data = serde_json::json!({ "kind": key.kind, "key": key.key, "pathname": pathname });
        let ttl = ttl.unwrap_or(DEFAULT_TTL).clamp(1, DEFAULT_TTL);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(Self::entry_key(&key))
            .arg(value.as_ref())
            .arg("EX")
            .arg(ttl)
            .ignore();
        if key.kind == USE_CACHE {
            let index = Self::use_cache_index_key(&key.namespace);
            let now = now_ms() / 1000;
            pipe.cmd("ZADD")
                .arg(&index)
                .arg(now + ttl)
                .arg(&key.key)
                .ignore()
                .cmd("ZREMRANGEBYSCORE")
                .arg(&index)
                .arg("-inf")
                .arg(now)
                .ignore();
        }
        self.announce(&mut pipe, &key.namespace, "entry", &data);
        let write = pipe.query_async::<()>(&mut connection);
        match tokio::time::timeout(STORE_TIMEOUT * 10, write).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                tracing::debug!(error = %err, "shared cache: an entry was not written through")
            }
            Err(_) => tracing::debug!("shared cache: writing an entry timed out"),
        }
    }

    fn announce(&self, pipe: &mut redis::Pipeline, namespace: &str, change: &str, data: &Value) {
        pipe.cmd("XADD")
            .arg(Self::stream_key())
            .arg("MAXLEN")
            .arg("~")
            .arg(STREAM_LENGTH)
            .arg("*")
            .arg("host")
            .arg(&self.host)
            .arg("build")
            .arg(namespace)
            .arg("change")
            .arg(change)
            .arg("data")
            .arg(data.to_string())
            .ignore();
    }

    /// The `'use cache'` keys of `namespace` whose entries the store holds, or `None` when
    /// it cannot say (unreachable, not in step, too slow).
    pub(crate) async fn use_cache_keys(&self, namespace: &str) -> Option<Vec<String>> {
        let mut command = redis::cmd("ZRANGEBYSCORE");
        command
            .arg(Self::use_cache_index_key(namespace))
            .arg(now_ms() / 1000)
            .arg("+inf");
        self.read(&command, "'use cache' keys").await
    }

    /// Every tag of `namespace` the store has.
    pub(crate) async fn read_tags(&self, namespace: &str) -> redis::RedisResult<TagStates> {
        let mut connection = self.writes.clone();
        let states: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(Self::tags_key(namespace))
            .query_async(&mut connection)
            .await?;
        Ok(parse_tags(states))
    }

    /// Records revalidated tags in the store and announces them, waiting at most
    /// [`STORE_TIMEOUT`]; what could not be sent is sent on reconnect.
    pub(crate) async fn publish_tags(&self, namespace: &str, states: TagStates) {
        if !self.synced() || !self.send_tags(namespace, &states).await {
            self.unsent
                .lock()
                .expect("unsent lock")
                .push_back((namespace.to_owned(), states));
        }
    }

    async fn send_tags(&self, namespace: &str, states: &[(String, Value)]) -> bool {
        let mut connection = self.writes.clone();
        let mut merge = self.merge_tags.key(Self::tags_key(namespace));
        for (tag, state) in states {
            merge.arg(tag).arg(state.to_string());
        }
        let data = Value::Array(
            states
                .iter()
                .map(|(tag, state)| serde_json::json!([tag, state]))
                .collect(),
        );
        let send = async {
            merge.invoke_async::<i64>(&mut connection).await?;
            let mut pipe = redis::pipe();
            self.announce(&mut pipe, namespace, "tags", &data);
            pipe.query_async::<()>(&mut connection).await
        };
        match tokio::time::timeout(STORE_TIMEOUT, send).await {
            Ok(Ok(())) => true,
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "shared cache: revalidated tags not sent yet; sent on reconnect");
                false
            }
            Err(_) => {
                tracing::warn!(
                    "shared cache: sending revalidated tags timed out; sent on reconnect"
                );
                false
            }
        }
    }
}

/// Reads the stream of changes for `cache` while it lives: applies other hosts' changes,
/// resyncs when it cannot prove it saw them all, sends what waited for a reconnect.
pub(crate) async fn follow(cache: Weak<Cache>, shared: Arc<SharedStore>) {
    let mut epoch: Option<String> = None;
    let mut last_id: Option<String> = None;
    let mut warned = false;
    while cache.strong_count() > 0 {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(None);
        let mut connection = match shared
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
        {
            Ok(connection) => connection,
            Err(err) => {
                shared.synced.store(false, Ordering::Release);
                if !warned {
                    tracing::warn!(error = %err, "shared cache unreachable: serving from this host's cache, reconnecting");
                    warned = true;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
        };
        match resume(&cache, &shared, &mut connection, &mut epoch, &mut last_id).await {
            Ok(()) => {
                if warned {
                    tracing::info!("shared cache reachable again");
                }
                warned = false;
            }
            Err(err) => {
                shared.synced.store(false, Ordering::Release);
                tracing::warn!(error = %err, "shared cache: resync failed; retrying");
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
        }
        // Read until the connection breaks.
        loop {
            if cache.strong_count() == 0 {
                return;
            }
            let Some(id) = last_id.clone() else { break };
            let read = redis::cmd("XREAD")
                .arg("BLOCK")
                .arg(1000)
                .arg("COUNT")
                .arg(512)
                .arg("STREAMS")
                .arg(SharedStore::stream_key())
                .arg(&id)
                .query_async::<Option<StreamReadReply>>(&mut connection)
                .await;
            let reply = match read {
                Ok(reply) => reply,
                Err(err) => {
                    shared.synced.store(false, Ordering::Release);
                    tracing::warn!(error = %err, "shared cache: lost the stream of changes; serving from this host's cache, reconnecting");
                    warned = true;
                    break;
                }
            };
            let Some(live) = cache.upgrade() else { return };
            for stream in reply.map(|r| r.keys).unwrap_or_default() {
                for change in stream.ids {
                    apply(&live, &shared, &change);
                    last_id = Some(change.id);
                }
            }
        }
    }
}

/// After a (re)connect: proves continuity with what the host saw, or resyncs; then sends
/// the tag changes that waited.
async fn resume(
    cache: &Weak<Cache>,
    shared: &SharedStore,
    connection: &mut redis::aio::MultiplexedConnection,
    epoch: &mut Option<String>,
    last_id: &mut Option<String>,
) -> redis::RedisResult<()> {
    let stream = SharedStore::stream_key();
    let fresh_epoch = shared.host.clone();
    let (_, current): (Option<String>, String) = redis::pipe()
        .cmd("SET")
        .arg(format!("{PREFIX}epoch"))
        .arg(&fresh_epoch)
        .arg("NX")
        .cmd("GET")
        .arg(format!("{PREFIX}epoch"))
        .query_async(connection)
        .await?;
    let first: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(&stream)
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(1)
        .query_async(connection)
        .await?;
    let newest: Vec<(String, Vec<(String, String)>)> = redis::cmd("XREVRANGE")
        .arg(&stream)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(connection)
        .await?;
    let continuous = match (epoch.as_deref(), last_id.as_deref()) {
        (Some(known), Some(seen)) => {
            known == current
                && first
                    .first()
                    .is_none_or(|(id, _)| stream_id(id) <= stream_id(seen) || seen == "0-0")
        }
        _ => false,
    };
    if !continuous {
        let Some(cache) = cache.upgrade() else {
            return Ok(());
        };
        let had_epoch = epoch.is_some();
        // From this id on, changes are read from the stream; the tags before it from the
        // hashes below (a change in both is applied twice, which changes nothing).
        *last_id = Some(
            newest
                .first()
                .map_or_else(|| "0-0".to_owned(), |(id, _)| id.clone()),
        );
        let namespaces = cache.namespaces();
        let mut tags = Vec::new();
        for namespace in &namespaces {
            let states: Vec<(String, String)> = redis::cmd("HGETALL")
                .arg(SharedStore::tags_key(namespace))
                .query_async(connection)
                .await?;
            tags.push((namespace.clone(), states));
        }
        if had_epoch {
            tracing::warn!(
                "shared cache: could not prove this host saw every change; its cache starts over"
            );
            cache.forget_all();
        }
        for (namespace, states) in tags {
            cache.apply_remote_tags(&namespace, parse_tags(states));
        }
        *epoch = Some(current);
    }
    shared.synced.store(true, Ordering::Release);
    loop {
        let next = shared.unsent.lock().expect("unsent lock").pop_front();
        let Some((namespace, states)) = next else {
            break;
        };
        if !shared.send_tags(&namespace, &states).await {
            shared
                .unsent
                .lock()
                .expect("unsent lock")
                .push_front((namespace, states));
            shared.synced.store(false, Ordering::Release);
            return Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "tags waiting for the store were not sent",
            )));
        }
    }
    Ok(())
}

/// The tags hash as the store returns it; a state that is not JSON is skipped.
fn parse_tags(states: Vec<(String, String)>) -> TagStates {
    states
        .into_iter()
        .filter_map(|(tag, state)| Some((tag, serde_json::from_str(&state).ok()?)))
        .collect()
}

/// A stream id `<ms>-<seq>`, for ordering.
fn stream_id(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

/// Applies one change another host announced.
fn apply(cache: &Cache, shared: &SharedStore, change: &redis::streams::StreamId) {
    let field = |name: &str| -> Option<String> {
        match change.map.get(name)? {
            redis::Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
            redis::Value::SimpleString(text) => Some(text.clone()),
            _ => None,
        }
    };
    if field("host").as_deref() == Some(shared.host.as_str()) {
        return;
    }
    let (Some(namespace), Some(kind), Some(data)) =
        (field("build"), field("change"), field("data"))
    else {
        tracing::warn!(id = %change.id, "shared cache: a change without its fields; ignored");
        return;
    };
    let Ok(data) = serde_json::from_str::<Value>(&data) else {
        tracing::warn!(id = %change.id, "shared cache: a change that is not JSON; ignored");
        return;
    };
    match kind.as_str() {
        "tags" => {
            let states = serde_json::from_value(data).unwrap_or_default();
            cache.apply_remote_tags(&namespace, states);
        }
        "entry" => {
            let (Some(kind), Some(key)) = (data["kind"].as_str(), data["key"].as_str()) else {
                return;
            };
            let key = EntryKey {
                namespace: namespace.clone(),
                kind: kind.to_owned(),
                key: key.to_owned(),
            };
            cache.forget(&key, data["pathname"].as_str().map(str::to_owned));
        }
        other => tracing::debug!(
            change = other,
            "shared cache: a change of a kind this version does not know; ignored"
        ),
    }
}
