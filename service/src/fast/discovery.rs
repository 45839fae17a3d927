//! Asking the `paystate` service who serves what, over the NATS services protocol
//! (`$SRV.PING|INFO|STATS.paystate`, what `nats micro` sends): every live instance answers
//! once. Used by `paystate service`, the bench and the tests.

use futures::StreamExt;
use paystate_events::subjects::{RPC_PARTITIONS, SERVICE_NAME};
use serde_json::Value;
use std::time::Duration;

/// Answers read at most (instances of one deployment).
const ANSWERS_MAX: usize = 256;

/// Every instance's answer to `$SRV.<verb>.paystate` (`PING`, `INFO`, `STATS`) that arrives
/// within `collect`, sorted by instance id.
pub async fn ask(
    nats: &async_nats::Client,
    verb: &str,
    collect: Duration,
) -> Result<Vec<Value>, async_nats::Error> {
    let inbox = nats.new_inbox();
    let mut sub = nats.subscribe(inbox.clone()).await?;
    nats.publish_with_reply(format!("$SRV.{verb}.{SERVICE_NAME}"), inbox, "".into())
        .await?;
    let mut answers = Vec::new();
    let until = tokio::time::sleep(collect);
    tokio::pin!(until);
    while answers.len() < ANSWERS_MAX {
        tokio::select! {
            _ = &mut until => break,
            next = sub.next() => match next {
                Some(msg) => {
                    if let Ok(v) = serde_json::from_slice::<Value>(&msg.payload) {
                        answers.push(v);
                    }
                }
                None => break,
            },
        }
    }
    let id = |v: &Value| {
        v.get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    answers.sort_by_key(id);
    Ok(answers)
}

/// The fast-path partitions an INFO answer lists (endpoint subjects `paystate.rpc.*.<p>.*`).
pub fn partitions_of(info: &Value) -> Vec<usize> {
    info.get("endpoints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("subject")?.as_str())
        .filter_map(|s| s.split('.').nth(3)?.parse::<usize>().ok())
        .filter(|&p| p < RPC_PARTITIONS)
        .collect()
}

/// Who serves the fast path right now: how many instances answered, and for each partition
/// how many of them serve it (1 everywhere once they have settled).
pub async fn coverage(
    nats: &async_nats::Client,
    collect: Duration,
) -> Result<(usize, Vec<usize>), async_nats::Error> {
    let answers = ask(nats, "INFO", collect).await?;
    let mut served = vec![0usize; RPC_PARTITIONS];
    for p in answers.iter().flat_map(partitions_of) {
        served[p] += 1;
    }
    Ok((answers.len(), served))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_read_from_endpoint_subjects() {
        let info: Value = serde_json::json!({"endpoints": [
            {"name": "p07", "subject": "paystate.rpc.*.7.*"},
            {"name": "p63", "subject": "paystate.rpc.*.63.*"},
            {"name": "x", "subject": "paystate.rpc.*.64.*"},
            {"name": "y", "subject": "other"}
        ]});
        assert_eq!(partitions_of(&info), vec![7, 63]);
        assert!(partitions_of(&Value::Null).is_empty());
    }
}
