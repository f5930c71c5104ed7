//! Checking a peer's Store response before handing it on: the status, the request id and the
//! cursor; then each message, which is dropped (and counted) when its hash is not its
//! message's, when it does not match the query, when it is malformed, or when it repeats.

use std::collections::HashSet;

use prost::Message as _;

use crate::message::MessageHash;
use crate::store::{
    StatusCode, StoreDropReason, StoreError, StoreFilter, StoreQuery, StoreQueryResponse,
    WakuMessageKeyValue,
};

/// A response that passed the checks, and what was dropped from it.
#[derive(Debug)]
pub(crate) struct Verified {
    pub(crate) response: StoreQueryResponse,
    pub(crate) dropped: [u64; StoreDropReason::ALL.len()],
}

/// Decodes and checks the response `raw` to the query `query` (whose request id was
/// `request_id`), sent by a node relaying on `own_pubsub_topics`. Hashes in `seen` (and those
/// of earlier entries) count as duplicates; kept hashes are added to it.
pub(crate) fn verify_response(
    raw: &[u8],
    request_id: &str,
    query: &StoreQuery,
    own_pubsub_topics: &[String],
    seen: &mut HashSet<MessageHash>,
) -> Result<Verified, StoreError> {
    let mut response = StoreQueryResponse::decode(raw)
        .map_err(|e| StoreError::BadResponse(format!("undecodable: {e}")))?;
    let code = StatusCode(response.status_code.unwrap_or(0));
    if !code.is_success() {
        return Err(StoreError::Status {
            code,
            desc: response.status_desc.unwrap_or_default(),
        });
    }
    if response.request_id != request_id {
        return Err(StoreError::BadResponse(format!(
            "request id {:?}, expected {request_id:?}",
            response.request_id
        )));
    }
    if let Some(cursor) = &response.pagination_cursor
        && cursor.len() != 32
    {
        return Err(StoreError::BadResponse(format!(
            "cursor of {} bytes, expected 32",
            cursor.len()
        )));
    }
    let mut dropped = [0; StoreDropReason::ALL.len()];
    response
        .messages
        .retain(|entry| match check(entry, query, own_pubsub_topics, seen) {
            Ok(()) => true,
            Err(reason) => {
                dropped[reason.index()] += 1;
                false
            }
        });
    Ok(Verified { response, dropped })
}

fn check(
    entry: &WakuMessageKeyValue,
    query: &StoreQuery,
    own_pubsub_topics: &[String],
    seen: &mut HashSet<MessageHash>,
) -> Result<(), StoreDropReason> {
    let hash = entry.hash().ok_or(StoreDropReason::Malformed)?;
    match (&entry.message, &entry.pubsub_topic) {
        (Some(message), Some(pubsub_topic)) => {
            message.check().map_err(|_| StoreDropReason::Malformed)?;
            if message.hash(pubsub_topic) != hash {
                return Err(StoreDropReason::HashMismatch);
            }
            let ours = match &query.filter {
                StoreFilter::Content {
                    topics: Some(_), ..
                } => true,
                _ => own_pubsub_topics.contains(pubsub_topic),
            };
            if !ours || !query.matches(&hash, pubsub_topic, message) {
                return Err(StoreDropReason::Foreign);
            }
        }
        (None, None) => {
            // A key without its value: only a lookup's hashes can be checked.
            if let StoreFilter::Hashes(wanted) = &query.filter
                && !wanted.contains(&hash)
            {
                return Err(StoreDropReason::Foreign);
            }
        }
        _ => return Err(StoreDropReason::Malformed),
    }
    if !seen.insert(hash) {
        return Err(StoreDropReason::Duplicate);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::WakuMessage;
    use crate::store::StoreQueryRequest;
    use proptest::prelude::*;

    const PUBSUB: &str = "/waku/2/rs/4242/0";
    const TOPIC: &str = "/demls/1/g/proto";

    fn message(payload: &[u8], topic: &str, timestamp: i64) -> WakuMessage {
        WakuMessage {
            payload: payload.to_vec(),
            content_topic: topic.into(),
            timestamp: Some(timestamp),
            ..WakuMessage::default()
        }
    }

    fn entry(pubsub: &str, message: WakuMessage) -> WakuMessageKeyValue {
        WakuMessageKeyValue {
            message_hash: Some(message.hash(pubsub).0.to_vec()),
            message: Some(message),
            pubsub_topic: Some(pubsub.into()),
        }
    }

    fn ok(messages: Vec<WakuMessageKeyValue>) -> Vec<u8> {
        StoreQueryResponse {
            request_id: "id".into(),
            status_code: Some(200),
            messages,
            ..StoreQueryResponse::default()
        }
        .encode_to_vec()
    }

    fn topic_query() -> StoreQuery {
        StoreQuery::from_request(&StoreQueryRequest::for_topics(PUBSUB, [TOPIC], 20))
            .expect("valid")
    }

    fn verify(raw: &[u8], query: &StoreQuery) -> Result<Verified, StoreError> {
        verify_response(raw, "id", query, &[PUBSUB.into()], &mut HashSet::new())
    }

    fn count(v: &Verified, reason: StoreDropReason) -> u64 {
        v.dropped[reason.index()]
    }

    #[test]
    fn drops_forged_foreign_malformed_and_duplicate_messages() {
        let good = entry(PUBSUB, message(b"good", TOPIC, 5));
        let mut forged = entry(PUBSUB, message(b"forged", TOPIC, 5));
        if let Some(m) = forged.message.as_mut() {
            m.payload = b"changed".to_vec();
        }
        let other_shard = entry("/waku/2/rs/4242/1", message(b"x", TOPIC, 5));
        let other_topic = entry(PUBSUB, message(b"x", "/demls/1/h/proto", 5));
        let half = WakuMessageKeyValue {
            pubsub_topic: None,
            ..entry(PUBSUB, message(b"half", TOPIC, 5))
        };
        let short_hash = WakuMessageKeyValue {
            message_hash: Some(vec![1; 31]),
            ..good.clone()
        };
        let empty_payload = entry(PUBSUB, message(b"", TOPIC, 5));
        let raw = ok(vec![
            good.clone(),
            forged,
            other_shard,
            other_topic,
            half,
            short_hash,
            empty_payload,
            good.clone(),
        ]);
        let v = verify(&raw, &topic_query()).expect("verified");
        assert_eq!(v.response.messages, vec![good]);
        assert_eq!(count(&v, StoreDropReason::HashMismatch), 1);
        assert_eq!(count(&v, StoreDropReason::Foreign), 2);
        assert_eq!(count(&v, StoreDropReason::Malformed), 3);
        assert_eq!(count(&v, StoreDropReason::Duplicate), 1);
    }

    #[test]
    fn lookups_keep_only_asked_hashes() {
        let asked = entry(PUBSUB, message(b"asked", TOPIC, 5));
        let extra = entry(PUBSUB, message(b"extra", TOPIC, 5));
        let query =
            StoreQuery::from_request(&StoreQueryRequest::for_hashes(asked.hash())).expect("valid");
        let keys_only = |e: &WakuMessageKeyValue| WakuMessageKeyValue {
            message_hash: e.message_hash.clone(),
            ..WakuMessageKeyValue::default()
        };
        let raw = ok(vec![asked.clone(), extra.clone(), keys_only(&extra)]);
        let v = verify(&raw, &query).expect("verified");
        assert_eq!(v.response.messages, vec![asked.clone()]);
        assert_eq!(count(&v, StoreDropReason::Foreign), 2);
        // Without a topic filter, another pubsub topic is foreign.
        let elsewhere = entry("/waku/2/rs/1/0", message(b"asked", TOPIC, 5));
        let query = StoreQuery::from_request(&StoreQueryRequest::for_hashes(elsewhere.hash()))
            .expect("valid");
        let v = verify(&ok(vec![elsewhere.clone()]), &query).expect("verified");
        assert!(v.response.messages.is_empty());
        assert_eq!(count(&v, StoreDropReason::Foreign), 1);
        // Any shard the node relays on is its own.
        let ours = ["/waku/2/rs/4242/0".to_owned(), "/waku/2/rs/1/0".to_owned()];
        let v = verify_response(
            &ok(vec![elsewhere]),
            "id",
            &query,
            &ours,
            &mut HashSet::new(),
        )
        .expect("verified");
        assert_eq!(v.response.messages.len(), 1);
    }

    #[test]
    fn error_statuses_and_bad_envelopes_are_errors() {
        let q = topic_query();
        let busy = StoreQueryResponse {
            request_id: "N/A".into(),
            status_code: Some(429),
            status_desc: Some("TOO_MANY_REQUESTS".into()),
            ..StoreQueryResponse::default()
        };
        assert_eq!(
            verify(&busy.encode_to_vec(), &q).err(),
            Some(StoreError::Status {
                code: StatusCode::TOO_MANY_REQUESTS,
                desc: "TOO_MANY_REQUESTS".into()
            })
        );
        let no_status = StoreQueryResponse {
            request_id: "id".into(),
            ..StoreQueryResponse::default()
        };
        assert!(matches!(
            verify(&no_status.encode_to_vec(), &q),
            Err(StoreError::Status {
                code: StatusCode(0),
                ..
            })
        ));
        let other_id = StoreQueryResponse {
            request_id: "other".into(),
            status_code: Some(200),
            ..StoreQueryResponse::default()
        };
        assert!(matches!(
            verify(&other_id.encode_to_vec(), &q),
            Err(StoreError::BadResponse(_))
        ));
        let bad_cursor = StoreQueryResponse {
            request_id: "id".into(),
            status_code: Some(200),
            pagination_cursor: Some(vec![0; 3]),
            ..StoreQueryResponse::default()
        };
        assert!(matches!(
            verify(&bad_cursor.encode_to_vec(), &q),
            Err(StoreError::BadResponse(_))
        ));
        assert!(matches!(
            verify(b"\xff", &q),
            Err(StoreError::BadResponse(_))
        ));
    }

    proptest! {
        #![proptest_config(crate::fuzz::config())]

        #[test]
        fn never_panics_on_arbitrary_bytes(raw in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = verify(&raw, &topic_query());
        }

        #[test]
        fn never_panics_on_mutated_responses(
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        ) {
            let mut raw = ok(vec![
                entry(PUBSUB, message(b"one", TOPIC, 1)),
                entry(PUBSUB, message(b"two", TOPIC, 2)),
            ]);
            for (at, byte) in flips {
                let i = at.index(raw.len());
                raw[i] = byte;
            }
            if let Ok(v) = verify(&raw, &topic_query()) {
                for m in &v.response.messages {
                    let (Some(message), Some(topic)) = (&m.message, &m.pubsub_topic) else {
                        continue;
                    };
                    prop_assert_eq!(m.hash(), Some(message.hash(topic)));
                }
            }
        }
    }
}
