//! Pub/sub channels and patterns: the seed's model, at-most-once.
//!
//! Redis pushes messages to a subscriber whether or not it keeps up, and keeps nothing for one
//! that is not listening. So a subscriber task takes each message off the connection at once
//! and puts it in a bounded buffer; when the buffer is full the message is counted as dropped
//! (never lost without a trace). The dispatcher hands buffered messages to handlers, at
//! most `concurrency` messages in flight; what is buffered together goes to one handler
//! together (up to 256), each message with its own outcome. A lost connection is made again with backoff and the subscriptions
//! renewed; what was published meanwhile never reached this subscriber. On stop, the
//! subscription ends and what is buffered or in flight is still handled.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use super::Context;
use crate::StreamError;
use crate::message::{Message, now_us};
use crate::sink::Outcome;

/// The most messages one handler takes together.
const MOST_PER_HANDLER: usize = 256;

/// Runs the subscription and its handlers until told to stop, then drains.
pub(crate) async fn run(
    context: Arc<Context>,
    url: &str,
    channels: &[String],
    patterns: &[String],
    concurrency: usize,
    buffer: usize,
) -> Result<(), StreamError> {
    let client = triad_redis::client(url)?;
    // Fail at once, with the reason, when Redis is not there at the start.
    client
        .get_async_pubsub()
        .await
        .map_err(|source| triad_redis::Error::Redis {
            url: url.to_owned(),
            source,
        })?;
    let (queue, mut buffered) = mpsc::channel::<Message>(buffer);
    let subscriber = tokio::spawn(subscribe(
        client,
        channels.to_vec(),
        patterns.to_vec(),
        queue.clone(),
        context.clone(),
    ));
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut handlers = JoinSet::new();
    let gauge = queue.downgrade();
    drop(queue);
    // One timer for the whole loop (a fresh sleep per message costs a timer entry each).
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    loop {
        while handlers.try_join_next().is_some() {}
        if let Some(queue) = gauge.upgrade() {
            let waiting = (queue.max_capacity() - queue.capacity()) as u64;
            context.metrics.pending.store(waiting, Ordering::Relaxed);
        }
        let mut permit = permits
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore stays open");
        let message = tokio::select! {
            message = buffered.recv() => message,
            _ = ticker.tick() => continue,
        };
        let Some(message) = message else {
            break; // the subscriber has stopped, and the buffer is empty
        };
        // What else is buffered joins this handler, as far as there are permits for it.
        let mut batch = vec![message];
        let room = permits.available_permits().min(MOST_PER_HANDLER - 1);
        while batch.len() <= room {
            let Ok(message) = buffered.try_recv() else {
                break;
            };
            batch.push(message);
        }
        if batch.len() > 1 {
            let more = permits
                .clone()
                .try_acquire_many_owned((batch.len() - 1) as u32)
                .expect("only this loop takes permits");
            permit.merge(more);
        }
        let size = batch.len() as i64;
        context.metrics.in_flight.fetch_add(size, Ordering::Relaxed);
        let context = context.clone();
        handlers.spawn(async move {
            let mut committed = Vec::new();
            for (message, outcome) in context.outcomes(batch).await {
                match outcome {
                    Outcome::Committed => committed.push(message),
                    Outcome::Failed(reason) => {
                        // Pub/sub cannot deliver it again: it is lost, and counted.
                        context.metrics.failed.fetch_add(1, Ordering::Relaxed);
                        context.note(&message, &reason);
                    }
                    Outcome::Rejected(reason) => {
                        context.dead_letter(&message, &reason).await;
                    }
                }
            }
            context.committed(&committed);
            context.metrics.in_flight.fetch_sub(size, Ordering::Relaxed);
            drop(permit);
        });
    }
    while handlers.join_next().await.is_some() {}
    context.metrics.pending.store(0, Ordering::Relaxed);
    subscriber.await.unwrap_or(Ok(()))
}

/// Keeps a subscription open until told to stop, putting each message into the buffer or
/// counting it as dropped.
async fn subscribe(
    client: redis::Client,
    channels: Vec<String>,
    patterns: Vec<String>,
    queue: mpsc::Sender<Message>,
    context: Arc<Context>,
) -> Result<(), StreamError> {
    let started = now_us();
    let mut sequence = 0u64;
    let mut pause = Duration::ZERO;
    while !context.stopping() {
        let mut pubsub = match client.get_async_pubsub().await {
            Ok(pubsub) => pubsub,
            Err(_) => {
                pause = triad_redis::backoff(pause);
                tokio::time::sleep(pause).await;
                continue;
            }
        };
        let mut subscribed = Ok(());
        for channel in &channels {
            subscribed = subscribed.and(pubsub.subscribe(channel).await);
        }
        for pattern in &patterns {
            subscribed = subscribed.and(pubsub.psubscribe(pattern).await);
        }
        if let Err(error) = subscribed {
            if triad_redis::is_unreachable(&error) {
                continue;
            }
            return Err(StreamError::Refused {
                what: "SUBSCRIBE".into(),
                source: error,
            });
        }
        pause = Duration::ZERO;
        let mut messages = pubsub.on_message();
        let mut ticker = tokio::time::interval(Duration::from_millis(100));
        loop {
            let next = tokio::select! {
                next = messages.next() => next,
                _ = ticker.tick() => {
                    if context.stopping() { return Ok(()); }
                    continue;
                }
            };
            let Some(published) = next else {
                // The connection is gone: subscribe again.
                context.metrics.reconnects.fetch_add(1, Ordering::Relaxed);
                break;
            };
            sequence += 1;
            let channel = published.get_channel_name().to_owned();
            let message = Message::from_publish(
                &channel,
                format!("{channel}:{started}:{sequence}"),
                published.get_payload_bytes().to_vec(),
            );
            context.metrics.received.fetch_add(1, Ordering::Relaxed);
            match queue.try_send(message) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    context.metrics.dropped.fetch_add(1, Ordering::Relaxed);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return Ok(()),
            }
        }
    }
    Ok(())
}
