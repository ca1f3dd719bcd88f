//! Reading a stream through a consumer group, as `triad stream` and the cluster's workers do:
//! new entries or a consumer's own history (`XREADGROUP`), entries idle past a lease claimed
//! from consumers that went away (`XAUTOCLAIM`), each entry with how many times it has been
//! delivered (`XPENDING`), which is what dead-lettering counts.

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamPendingCountReply, StreamReadReply};

/// A stream, its group and this consumer.
#[derive(Debug, Clone, Copy)]
pub struct Group<'a> {
    /// The stream's key.
    pub stream: &'a str,
    /// The consumer group.
    pub group: &'a str,
    /// This consumer's name in the group.
    pub consumer: &'a str,
}

/// Reads up to `count` entries: from this consumer's history after `history`, or new ones
/// (blocking up to `block_ms`), on `reader` (a blocking read holds its connection). Each with
/// its deliveries, asked on `control`.
pub async fn read(
    reader: &mut ConnectionManager,
    control: &mut ConnectionManager,
    spec: Group<'_>,
    history: Option<&str>,
    count: usize,
    block_ms: u64,
) -> redis::RedisResult<Vec<(StreamId, u64)>> {
    let mut command = redis::cmd("XREADGROUP");
    command
        .arg("GROUP")
        .arg(spec.group)
        .arg(spec.consumer)
        .arg("COUNT")
        .arg(count);
    if history.is_none() {
        command.arg("BLOCK").arg(block_ms);
    }
    command
        .arg("STREAMS")
        .arg(spec.stream)
        .arg(history.unwrap_or(">"));
    let reply: Option<StreamReadReply> = command.query_async(reader).await?;
    let entries: Vec<StreamId> = reply
        .map(|reply| reply.keys.into_iter().flat_map(|key| key.ids).collect())
        .unwrap_or_default();
    match history {
        None => Ok(entries.into_iter().map(|entry| (entry, 1)).collect()),
        Some(_) => with_deliveries(control, spec, entries).await,
    }
}

/// Claims up to `count` entries idle past `idle` (`XAUTOCLAIM`), from `cursor` on; gives the
/// next cursor (`0-0` when the pending list has been scanned through) and the entries, each
/// with its deliveries. Entries deleted from the stream meanwhile are acknowledged away.
pub async fn claim(
    control: &mut ConnectionManager,
    spec: Group<'_>,
    idle: Duration,
    cursor: &str,
    count: usize,
) -> redis::RedisResult<(String, Vec<(StreamId, u64)>)> {
    let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
        .arg(spec.stream)
        .arg(spec.group)
        .arg(spec.consumer)
        .arg(idle.as_millis() as u64)
        .arg(cursor)
        .arg("COUNT")
        .arg(count)
        .query_async(control)
        .await?;
    if !reply.deleted_ids.is_empty() {
        // Entries gone from the stream: their pending records only need closing.
        let _: redis::RedisResult<u64> = redis::cmd("XACK")
            .arg(spec.stream)
            .arg(spec.group)
            .arg(&reply.deleted_ids)
            .query_async(control)
            .await;
    }
    let entries = with_deliveries(control, spec, reply.claimed).await?;
    Ok((reply.next_stream_id, entries))
}

/// Each entry with its delivery count from the pending list (1 for one no longer there).
pub async fn with_deliveries(
    control: &mut ConnectionManager,
    spec: Group<'_>,
    entries: Vec<StreamId>,
) -> redis::RedisResult<Vec<(StreamId, u64)>> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipeline = redis::pipe();
    for entry in &entries {
        pipeline
            .cmd("XPENDING")
            .arg(spec.stream)
            .arg(spec.group)
            .arg(&entry.id)
            .arg(&entry.id)
            .arg(1);
    }
    let replies: Vec<StreamPendingCountReply> = pipeline.query_async(control).await?;
    Ok(entries
        .into_iter()
        .zip(replies)
        .map(|(entry, pending)| {
            let deliveries = pending
                .ids
                .first()
                .map_or(1, |pending| pending.times_delivered as u64);
            (entry, deliveries)
        })
        .collect())
}
