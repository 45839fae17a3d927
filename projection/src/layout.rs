//! Names and shapes in NATS: the pointer bucket, the generation buckets, keys, consumers.
//!
//! ```text
//! KV paystate_projection        key "orders" -> Generation {generation, bucket, consumer, start_seq}
//! KV paystate_orders_g<N>       key "order.<order_id>" -> ProjectedOrder {seq, state, ...}
//! consumer paystate-projector-g<N> on PAYSTATE_EVENTS (durable, explicit ack)
//! ```
//!
//! Readers resolve the pointer, then read the bucket it names. A rebuild fills generation
//! N+1 while N keeps serving, then swaps the pointer with a compare-and-set.

use paystate_events::{OrderId, Timestamp};
use serde::{Deserialize, Serialize};

/// KV bucket holding the pointer to the live generation.
pub const POINTER_BUCKET: &str = "paystate_projection";
/// Key of the order projection's pointer in [`POINTER_BUCKET`].
pub const POINTER_KEY: &str = "orders";
/// Generation buckets are `paystate_orders_g<N>`.
pub const ORDERS_BUCKET_PREFIX: &str = "paystate_orders_g";
/// Each generation's durable consumer on the log is `paystate-projector-g<N>`.
pub const PROJECTOR_CONSUMER_PREFIX: &str = "paystate-projector-g";
/// Key prefix of order records (order ids have no dots, so no key can collide with others).
pub const ORDER_KEY_PREFIX: &str = "order.";

/// The KV key of an order's record.
pub fn order_key(order: &OrderId) -> String {
    format!("{ORDER_KEY_PREFIX}{order}")
}

/// One generation of the projection: which bucket, which consumer, from where in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Generation {
    pub generation: u64,
    pub bucket: String,
    pub consumer: String,
    /// The first log sequence the generation's consumer delivers (1 for a generation built
    /// live; end of the rebuild scan + 1 for a rebuilt one).
    pub start_seq: u64,
    /// When the generation was created (the creator's clock; informational).
    pub created_at: Timestamp,
}

impl Generation {
    pub fn new(generation: u64, start_seq: u64, created_at: Timestamp) -> Generation {
        Generation {
            generation,
            bucket: format!("{ORDERS_BUCKET_PREFIX}{generation}"),
            consumer: format!("{PROJECTOR_CONSUMER_PREFIX}{generation}"),
            start_seq,
            created_at,
        }
    }
}
