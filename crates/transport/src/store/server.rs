//! Answering the Store queries of peers: decoding and validation in the relay loop (bounded:
//! requests are at most [`crate::store::MAX_REQUEST_SIZE`] bytes), admission against the concurrency
//! bounds, and the backend query plus response encoding on tokio's blocking pool.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use libp2p::PeerId;
use libp2p::request_response::ResponseChannel;
use prost::Message as _;

use crate::store::{
    BackendError, Direction, MAX_QUERIES, MAX_QUERIES_PER_PEER, StoreBackend, StoreOutcome,
    StorePage, StoreQuery, StoreQueryRequest, StoreQueryResponse, WakuMessageKeyValue,
};

/// An answer ready to be sent.
pub(crate) struct Answer {
    pub(crate) channel: ResponseChannel<Vec<u8>>,
    /// The encoded [`StoreQueryResponse`].
    pub(crate) response: Vec<u8>,
    pub(crate) outcome: StoreOutcome,
}

struct Finished {
    peer: PeerId,
    answer: Answer,
}

/// A query admitted: the backend to ask, the request id, the validated query.
type Admitted = (Arc<dyn StoreBackend>, String, StoreQuery);

/// Why a query is answered without a lookup.
#[derive(Debug, PartialEq, Eq)]
struct Refusal {
    outcome: StoreOutcome,
    request_id: String,
    desc: String,
}

/// The queries of peers being answered.
pub(crate) struct StoreServer {
    backend: Option<Arc<dyn StoreBackend>>,
    per_peer: HashMap<PeerId, usize>,
    running: FuturesUnordered<BoxFuture<'static, Finished>>,
}

impl StoreServer {
    /// A server answering from `backend`; without one every query is answered `503`.
    pub(crate) fn new(backend: Option<Arc<dyn StoreBackend>>) -> StoreServer {
        StoreServer {
            backend,
            per_peer: HashMap::new(),
            running: FuturesUnordered::new(),
        }
    }

    /// Takes the query `raw` of `peer`. Returns the answer at once when there is nothing to
    /// look up (an invalid query, no store, too many queries in progress); otherwise the
    /// answer comes from [`StoreServer::next_answer`].
    pub(crate) fn on_request(
        &mut self,
        peer: PeerId,
        raw: &[u8],
        channel: ResponseChannel<Vec<u8>>,
    ) -> Option<Answer> {
        let (backend, request_id, query) = match self.admit(peer, raw) {
            Ok(admitted) => admitted,
            Err(Refusal {
                outcome,
                request_id,
                desc,
            }) => {
                return Some(Answer {
                    channel,
                    response: status_response(request_id, outcome, desc).encode_to_vec(),
                    outcome,
                });
            }
        };
        *self.per_peer.entry(peer).or_default() += 1;
        let id = request_id.clone();
        let task = tokio::task::spawn_blocking(move || answer(&*backend, id, &query));
        self.running.push(Box::pin(async move {
            let (outcome, response) = task.await.unwrap_or_else(|e| {
                tracing::error!(error = %e, "store backend failed");
                let outcome = StoreOutcome::Unavailable;
                let response = status_response(request_id, outcome, "store failed".into());
                (outcome, response.encode_to_vec())
            });
            Finished {
                peer,
                answer: Answer {
                    channel,
                    response,
                    outcome,
                },
            }
        }));
        None
    }

    /// Decodes and validates `raw`, and checks the bounds.
    fn admit(&self, peer: PeerId, raw: &[u8]) -> Result<Admitted, Refusal> {
        let request = StoreQueryRequest::decode(raw).map_err(|e| Refusal {
            outcome: StoreOutcome::BadRequest,
            request_id: String::new(),
            desc: format!("undecodable query: {e}"),
        })?;
        let refuse = |outcome: StoreOutcome, desc: String| Refusal {
            outcome,
            request_id: request.request_id.clone(),
            desc,
        };
        let query = StoreQuery::from_request(&request)
            .map_err(|e| refuse(StoreOutcome::BadRequest, e.to_string()))?;
        let backend = self
            .backend
            .clone()
            .ok_or_else(|| refuse(StoreOutcome::Unavailable, "this node keeps no store".into()))?;
        let peer_queries = self.per_peer.get(&peer).copied().unwrap_or(0);
        if peer_queries >= MAX_QUERIES_PER_PEER || self.running.len() >= MAX_QUERIES {
            return Err(refuse(
                StoreOutcome::TooManyRequests,
                "too many queries in progress".into(),
            ));
        }
        Ok((backend, request.request_id, query))
    }

    /// Whether answers are being prepared (the loop polls [`StoreServer::next_answer`] only
    /// then).
    pub(crate) fn is_busy(&self) -> bool {
        !self.running.is_empty()
    }

    /// The next prepared answer (pending while there is none).
    pub(crate) async fn next_answer(&mut self) -> Answer {
        let Some(Finished { peer, answer }) = self.running.next().await else {
            return std::future::pending().await;
        };
        if let Some(n) = self.per_peer.get_mut(&peer) {
            *n -= 1;
            if *n == 0 {
                self.per_peer.remove(&peer);
            }
        }
        answer
    }
}

fn status_response(request_id: String, outcome: StoreOutcome, desc: String) -> StoreQueryResponse {
    StoreQueryResponse {
        request_id,
        status_code: Some(outcome.status().0),
        status_desc: Some(desc),
        ..StoreQueryResponse::default()
    }
}

/// Looks `query` up in `backend` and encodes the response (on the blocking pool).
fn answer(
    backend: &dyn StoreBackend,
    request_id: String,
    query: &StoreQuery,
) -> (StoreOutcome, Vec<u8>) {
    let response = match backend.query(query) {
        Ok(page) => page_response(request_id, query, page),
        Err(e) => {
            let outcome = match e {
                BackendError::CursorNotFound => StoreOutcome::BadRequest,
                BackendError::Unavailable(_) => StoreOutcome::Unavailable,
            };
            return (
                outcome,
                status_response(request_id, outcome, e.to_string()).encode_to_vec(),
            );
        }
    };
    (StoreOutcome::Served, response.encode_to_vec())
}

/// The `200` response carrying `page`, held to the query's page size and byte budget
/// whatever the backend returned: going forward the oldest messages are kept, going backward
/// the newest, and the cursor then points at the last one kept in the walk.
fn page_response(request_id: String, query: &StoreQuery, page: StorePage) -> StoreQueryResponse {
    let entries: Vec<WakuMessageKeyValue> = page
        .messages
        .into_iter()
        .map(|m| WakuMessageKeyValue {
            message_hash: Some(m.hash.0.to_vec()),
            message: query.include_data.then_some(m.message),
            pubsub_topic: query.include_data.then_some(m.pubsub_topic),
        })
        .collect();
    let forward = query.direction == Direction::Forward;
    // Walk order: the page is oldest first, so a backward walk reads it from the end.
    let mut kept = 0;
    let mut bytes = 0;
    for entry in walk(&entries, forward) {
        let len = prost::encoding::message::encoded_len(20, entry);
        if kept == query.limit || (kept > 0 && bytes + len > query.max_bytes) {
            break;
        }
        kept += 1;
        bytes += len;
    }
    let (messages, cursor) = if kept == entries.len() {
        (entries, page.cursor.map(|h| h.0.to_vec()))
    } else {
        let messages = if forward {
            entries[..kept].to_vec()
        } else {
            entries[entries.len() - kept..].to_vec()
        };
        let last_in_walk = walk(&messages, forward).last();
        let cursor = last_in_walk.and_then(|e| e.message_hash.clone());
        (messages, cursor)
    };
    StoreQueryResponse {
        request_id,
        status_code: Some(StoreOutcome::Served.status().0),
        status_desc: Some("OK".into()),
        messages,
        pagination_cursor: cursor,
    }
}

fn walk(
    entries: &[WakuMessageKeyValue],
    forward: bool,
) -> Box<dyn Iterator<Item = &WakuMessageKeyValue> + '_> {
    if forward {
        Box::new(entries.iter())
    } else {
        Box::new(entries.iter().rev())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{MessageHash, WakuMessage};
    use crate::store::{MemoryStore, MemoryStoreLimits, StoredMessage};
    use proptest::prelude::*;

    fn stored(i: u8) -> StoredMessage {
        StoredMessage {
            hash: MessageHash([i; 32]),
            pubsub_topic: "/waku/2/rs/4242/0".into(),
            message: WakuMessage {
                payload: vec![i; 100],
                content_topic: "/a/1/b/c".into(),
                timestamp: Some(i64::from(i)),
                ..WakuMessage::default()
            },
        }
    }

    fn query(forward: bool, limit: usize, max_bytes: usize) -> StoreQuery {
        let request = StoreQueryRequest {
            include_data: true,
            pagination_forward: forward,
            ..StoreQueryRequest::default()
        };
        StoreQuery {
            limit,
            max_bytes,
            ..StoreQuery::from_request(&request).expect("valid")
        }
    }

    fn page(n: u8, cursor: Option<u8>) -> StorePage {
        StorePage {
            messages: (0..n).map(stored).collect(),
            cursor: cursor.map(|c| MessageHash([c; 32])),
        }
    }

    fn first_bytes(response: &StoreQueryResponse) -> Vec<u8> {
        response
            .messages
            .iter()
            .filter_map(|m| m.message_hash.as_ref().map(|h| h[0]))
            .collect()
    }

    #[test]
    fn a_page_within_bounds_is_passed_on() {
        let r = page_response("id".into(), &query(true, 10, usize::MAX), page(3, Some(2)));
        assert_eq!(first_bytes(&r), [0, 1, 2]);
        assert_eq!(r.pagination_cursor, Some(vec![2; 32]));
        assert_eq!((r.request_id.as_str(), r.status_code), ("id", Some(200)));
        assert!(
            r.messages
                .iter()
                .all(|m| m.message.is_some() && m.pubsub_topic.is_some())
        );
    }

    #[test]
    fn an_oversize_page_is_cut_with_a_cursor() {
        // The backend ignored the limits: forward keeps the oldest...
        let r = page_response("id".into(), &query(true, 2, usize::MAX), page(5, None));
        assert_eq!(first_bytes(&r), [0, 1]);
        assert_eq!(r.pagination_cursor, Some(vec![1; 32]));
        // ...backward the newest, with the oldest kept as cursor.
        let r = page_response("id".into(), &query(false, 2, usize::MAX), page(5, None));
        assert_eq!(first_bytes(&r), [3, 4]);
        assert_eq!(r.pagination_cursor, Some(vec![3; 32]));
        // The byte budget cuts too, but a page keeps one message.
        let r = page_response("id".into(), &query(true, 100, 1), page(5, None));
        assert_eq!(first_bytes(&r), [0]);
        assert_eq!(r.pagination_cursor, Some(vec![0; 32]));
    }

    #[test]
    fn hashes_only_without_include_data() {
        let mut q = query(true, 10, usize::MAX);
        q.include_data = false;
        let r = page_response("id".into(), &q, page(2, None));
        assert_eq!(first_bytes(&r), [0, 1]);
        assert!(
            r.messages
                .iter()
                .all(|m| m.message.is_none() && m.pubsub_topic.is_none())
        );
    }

    fn refusal(server: &StoreServer, raw: &[u8]) -> Option<(StoreOutcome, String)> {
        server
            .admit(PeerId::random(), raw)
            .err()
            .map(|r| (r.outcome, r.request_id))
    }

    #[test]
    fn admission_refuses_bad_queries_and_overload() {
        let store: Arc<dyn StoreBackend> = Arc::new(MemoryStore::new(MemoryStoreLimits::default()));
        let mut server = StoreServer::new(Some(store));
        let good = StoreQueryRequest {
            request_id: "q".into(),
            ..StoreQueryRequest::default()
        };
        assert_eq!(refusal(&server, &good.encode_to_vec()), None);
        assert_eq!(
            refusal(&server, b"\xff\xff"),
            Some((StoreOutcome::BadRequest, String::new()))
        );
        let half = StoreQueryRequest {
            pubsub_topic: Some("p".into()),
            ..good.clone()
        };
        assert_eq!(
            refusal(&server, &half.encode_to_vec()),
            Some((StoreOutcome::BadRequest, "q".into()))
        );
        assert_eq!(
            refusal(&StoreServer::new(None), &good.encode_to_vec()),
            Some((StoreOutcome::Unavailable, "q".into()))
        );
        let busy = PeerId::random();
        server.per_peer.insert(busy, MAX_QUERIES_PER_PEER);
        assert_eq!(
            server
                .admit(busy, &good.encode_to_vec())
                .err()
                .map(|r| r.outcome),
            Some(StoreOutcome::TooManyRequests)
        );
        assert_eq!(
            refusal(&server, &good.encode_to_vec()),
            None,
            "other peers still served"
        );
    }

    #[test]
    fn backend_errors_become_status_codes() {
        let store = MemoryStore::new(MemoryStoreLimits::default());
        let mut q = query(true, 10, usize::MAX);
        let (outcome, _) = answer(&store, "id".into(), &q);
        assert_eq!(outcome, StoreOutcome::Served);
        q.cursor = Some(MessageHash([1; 32]));
        let (outcome, bytes) = answer(&store, "id".into(), &q);
        assert_eq!(outcome, StoreOutcome::BadRequest);
        let r = StoreQueryResponse::decode(&bytes[..]).expect("decodes");
        assert_eq!(r.status_code, Some(400));
        assert_eq!(r.status_desc.as_deref(), Some("cursor not found"));
        assert_eq!(r.request_id, "id");
    }

    /// A store holding a few messages on two content topics.
    fn small_store() -> MemoryStore {
        let store = MemoryStore::new(MemoryStoreLimits::default());
        let now = crate::message::unix_nanos();
        for i in 0..12u8 {
            let message = WakuMessage {
                timestamp: Some(now - i64::from(i % 5) * 1_000_000_000),
                content_topic: format!("/a/1/{}/c", i % 2),
                ..stored(i).message
            };
            store.insert("/waku/2/rs/4242/0", message).expect("stored");
        }
        store
    }

    proptest! {
        #![proptest_config(crate::fuzz::config())]

        #[test]
        fn admission_never_panics_on_arbitrary_bytes(
            raw in proptest::collection::vec(any::<u8>(), 0..600),
        ) {
            let server = StoreServer::new(Some(Arc::new(small_store())));
            let _ = server.admit(PeerId::random(), &raw);
        }

        /// Any query (bounds of every kind, cursors known or not) gets a bounded answer.
        #[test]
        fn any_query_gets_a_bounded_answer(
            include_data in any::<bool>(),
            topics in proptest::option::of(proptest::collection::vec(0u8..3, 0..4)),
            time_start in proptest::option::of(any::<i64>()),
            time_end in proptest::option::of(any::<i64>()),
            hashes in proptest::collection::vec(any::<u8>(), 0..4),
            cursor in proptest::option::of(any::<u8>()),
            forward in any::<bool>(),
            limit in proptest::option::of(any::<u64>()),
        ) {
            let store = small_store();
            let known = store.lock_hashes();
            let pick = |i: u8| known[usize::from(i) % known.len()].0.to_vec();
            let request = StoreQueryRequest {
                request_id: "q".into(),
                include_data,
                pubsub_topic: topics.as_ref().map(|_| "/waku/2/rs/4242/0".to_owned()),
                content_topics: topics
                    .unwrap_or_default()
                    .into_iter()
                    .map(|t| format!("/a/1/{t}/c"))
                    .collect(),
                time_start,
                time_end,
                message_hashes: hashes.into_iter().map(pick).collect(),
                pagination_cursor: cursor.map(pick),
                pagination_forward: forward,
                pagination_limit: limit,
            };
            let Ok(query) = StoreQuery::from_request(&request) else {
                return Ok(());
            };
            let (outcome, bytes) = answer(&store, "q".into(), &query);
            let response = StoreQueryResponse::decode(&bytes[..]).expect("decodes");
            prop_assert_eq!(response.status_code, Some(outcome.status().0));
            prop_assert!(response.messages.len() <= query.limit);
            prop_assert!(bytes.len() <= crate::store::MAX_RESPONSE_SIZE);
        }
    }
}
