//! A one-pass decoder for commits as this build writes them, for long reads of the log
//! (audits, rebuilds, exports).
//!
//! Why: serde's derive buffers every internally tagged enum (`#[serde(tag = "type")]` on
//! [`Command`] and [`Event`], `#[serde(tag = "status")]` on [`SignalKind`]) and every
//! `#[serde(flatten)]` struct ([`CommandEnvelope`], [`ProviderSignal`]) into an owned tree of
//! `Content` values before it picks the variant, and the command twice (flatten, then tag).
//! That was most of an audit's 3.5 µs decode per commit. The writer's key order is fixed
//! (serde serializes fields in declaration order and a tag first), so when the tag comes
//! where the writer puts it the variant is known before its fields are read, and they can be
//! read straight from the JSON.
//!
//! How it stays exactly serde's decoder: [`decode_commit`] only ever answers `Ok` for input
//! that [`Commit::decode`] reads to the same value, and refuses everything else, so callers
//! fall back to [`Commit::decode`] on any error (for the error text and for input in another
//! shape: keys in another order, unknown keys, escaped tags, other versions). The fast path is
//! deliberately narrower than serde's:
//! - the envelope's keys must come as `command_id`, `order_id`, `issued_at`, `type`; a
//!   signal's as `provider`, (`provider_ref`), `evidence_ref`, `observed_at`, `status`; an
//!   event's tag first;
//! - after the tag only the variant's own field names are taken (an unknown key, a second
//!   tag or a repeated envelope key is refused, where serde would ignore the first and refuse
//!   the others);
//! - unit variants (`expire`, `cancelled`) must have no other keys.
//!
//! Every other field is read by the same derived `Deserialize` as serde's path (the mirror
//! enums below repeat each variant's fields with their types and `default` attributes; the
//! conversions back to the real types fail to compile if a field is renamed, removed or
//! retyped, and a field added to a real variant is an unknown key here, so it falls back).
//! `tests` checks over generated commits, and over mutated ones, that decode-or-fall-back
//! gives exactly what serde gives.

use crate::command::{Attachment, CaptureMode, Command, CommandEnvelope, PaymentInitiation};
use crate::event::{CancelledBy, Event, Evidence, SignalDisposition};
use crate::signal::{CustomerAction, Operation, ProviderSignal, SignalKind};
use crate::{CommandId, Commit, Money, OrderId, Provider, RejectionCode, Timestamp};
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::fmt;

/// Reads `text` as a commit of the current schema version in one pass. An error means only
/// "not on the fast path": decode with [`Commit::decode`] instead (see the module docs).
pub fn decode_commit(text: &str) -> Result<Commit, serde_json::Error> {
    let c: FastCommit = serde_json::from_str(text)?;
    if c.v != crate::COMMIT_SCHEMA_VERSION {
        return Err(de::Error::custom("fast decode: another schema version"));
    }
    Ok(Commit {
        v: c.v,
        order_id: c.order_id,
        commit: c.commit,
        prev_hash: c.prev_hash,
        decided_at: c.decided_at.0,
        fingerprint: c.fingerprint,
        command: c.command.0,
        events: c.events.into_iter().map(|e| e.0.into()).collect(),
    })
}

/// [`Commit`]'s fields (no attributes there either), with the command and events read by the
/// one-pass visitors.
#[derive(Deserialize)]
struct FastCommit {
    v: u16,
    order_id: OrderId,
    commit: u64,
    prev_hash: String,
    decided_at: FastTs,
    fingerprint: String,
    command: FastEnvelope,
    events: Vec<FastEvent>,
}

struct FastEnvelope(CommandEnvelope);
pub(crate) struct FastEvent(MirrorEvent);

impl From<FastEvent> for Event {
    fn from(e: FastEvent) -> Event {
        e.0.into()
    }
}
struct FastSignal(ProviderSignal);

impl From<FastSignal> for ProviderSignal {
    fn from(s: FastSignal) -> ProviderSignal {
        s.0
    }
}

impl<'de> Deserialize<'de> for FastEnvelope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(EnvelopeVisitor)
    }
}

struct EnvelopeVisitor;

impl<'de> Visitor<'de> for EnvelopeVisitor {
    type Value = FastEnvelope;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a command envelope as written")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FastEnvelope, A::Error> {
        expect_key(&mut map, "command_id")?;
        let command_id: CommandId = map.next_value()?;
        expect_key(&mut map, "order_id")?;
        let order_id: OrderId = map.next_value()?;
        expect_key(&mut map, "issued_at")?;
        let issued_at = map.next_value::<FastTs>()?.0;
        expect_key(&mut map, "type")?;
        let tag: &'de str = map.next_value()?;
        let command = MirrorCommand::deserialize(TagFirst { tag, map })?;
        Ok(FastEnvelope(CommandEnvelope {
            command_id,
            order_id,
            issued_at,
            command: command.into(),
        }))
    }
}

impl<'de> Deserialize<'de> for FastEvent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(EventVisitor)
    }
}

struct EventVisitor;

impl<'de> Visitor<'de> for EventVisitor {
    type Value = FastEvent;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an event as written")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FastEvent, A::Error> {
        expect_key(&mut map, "type")?;
        let tag: &'de str = map.next_value()?;
        Ok(FastEvent(MirrorEvent::deserialize(TagFirst { tag, map })?))
    }
}

impl<'de> Deserialize<'de> for FastSignal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(SignalVisitor)
    }
}

struct SignalVisitor;

impl<'de> Visitor<'de> for SignalVisitor {
    type Value = FastSignal;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a provider signal as written")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FastSignal, A::Error> {
        expect_key(&mut map, "provider")?;
        let provider: Provider = map.next_value()?;
        let mut provider_ref: Option<String> = None;
        let mut key = next_key(&mut map)?;
        if key == "provider_ref" {
            provider_ref = map.next_value()?;
            key = next_key(&mut map)?;
        }
        if key != "evidence_ref" {
            return Err(de::Error::custom("fast decode: keys out of order"));
        }
        let evidence_ref: String = map.next_value()?;
        expect_key(&mut map, "observed_at")?;
        let observed_at = map.next_value::<FastTs>()?.0;
        expect_key(&mut map, "status")?;
        let tag: &'de str = map.next_value()?;
        let kind = MirrorSignalKind::deserialize(TagFirst { tag, map })?;
        Ok(FastSignal(ProviderSignal {
            provider,
            provider_ref,
            evidence_ref,
            observed_at,
            kind: kind.into(),
        }))
    }
}

/// A [`Timestamp`] read as chrono reads it (`DateTime<Utc>`'s `Deserialize`: RFC 3339 through
/// `DateTime<FixedOffset>`), with the shape this build writes (`2026-11-01T00:00:00.001Z`) taken
/// without chrono's general parser, which showed in an audit's profile (4 to 6 per commit).
pub(crate) struct FastTs(Timestamp);

impl From<FastTs> for Timestamp {
    fn from(t: FastTs) -> Timestamp {
        t.0
    }
}

impl<'de> Deserialize<'de> for FastTs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(TsVisitor)
    }
}

struct TsVisitor;

impl Visitor<'_> for TsVisitor {
    type Value = FastTs;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an RFC 3339 formatted date and time string")
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<FastTs, E> {
        if let Some(t) = parse_utc_as_written(s) {
            return Ok(FastTs(t));
        }
        // Anything else exactly as chrono's own `Deserialize` for `DateTime<Utc>`.
        s.parse::<DateTime<FixedOffset>>()
            .map(|t| FastTs(t.with_timezone(&Utc)))
            .map_err(E::custom)
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z`, a valid date and time, seconds below 60 (a leap second
/// goes to chrono); `None` for anything else. Where it answers, the instant is the one chrono's
/// `Deserialize` for `DateTime<Utc>` reads (a proptest compares); readers of commands use it
/// too, before chrono's general parser.
pub fn parse_utc_as_written(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    if b[16] != b':' || *b.last()? != b'Z' {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |n, c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let date = NaiveDate::from_ymd_opt(num(0, 4)? as i32, num(5, 7)?, num(8, 10)?)?;
    let (h, m, sec) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    let frac = &b[19..b.len() - 1];
    let nanos = match frac {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            num(20, 20 + digits.len())? * 10u32.pow(9 - digits.len() as u32)
        }
        _ => return None,
    };
    if sec >= 60 {
        return None;
    }
    let time = NaiveTime::from_hms_nano_opt(h, m, sec, nanos)?;
    Some(NaiveDateTime::new(date, time).and_utc())
}

/// An optional [`FastTs`] (`null` or absent is `None`, as for `Option<Timestamp>`).
#[derive(Default)]
pub(crate) struct OptTs(Option<Timestamp>);

impl From<OptTs> for Option<Timestamp> {
    fn from(t: OptTs) -> Option<Timestamp> {
        t.0
    }
}

impl<'de> Deserialize<'de> for OptTs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(OptTs(Option::<FastTs>::deserialize(d)?.map(|t| t.0)))
    }
}

/// [`Evidence`]'s fields (same attributes), its time read by [`FastTs`].
#[derive(Deserialize)]
struct FastEvidence {
    #[serde(default)]
    provider_ref: Option<String>,
    evidence_ref: String,
    observed_at: FastTs,
}

impl From<FastEvidence> for Evidence {
    fn from(e: FastEvidence) -> Evidence {
        Evidence {
            provider_ref: e.provider_ref,
            evidence_ref: e.evidence_ref,
            observed_at: e.observed_at.0,
        }
    }
}

#[derive(Default)]
struct OptEvidence(Option<Evidence>);

impl From<OptEvidence> for Option<Evidence> {
    fn from(e: OptEvidence) -> Option<Evidence> {
        e.0
    }
}

impl<'de> Deserialize<'de> for OptEvidence {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(OptEvidence(
            Option::<FastEvidence>::deserialize(d)?.map(Evidence::from),
        ))
    }
}

/// The next key, borrowed from the input (an escaped key is refused: not as written).
fn next_key<'de, A: MapAccess<'de>>(map: &mut A) -> Result<&'de str, A::Error> {
    map.next_key::<&'de str>()?
        .ok_or_else(|| de::Error::custom("fast decode: a key is missing"))
}

fn expect_key<'de, A: MapAccess<'de>>(map: &mut A, want: &str) -> Result<(), A::Error> {
    match next_key(map)? {
        k if k == want => Ok(()),
        _ => Err(de::Error::custom("fast decode: keys out of order")),
    }
}

/// The rest of an object whose tag was read first, as an externally tagged enum's variant:
/// the mirror enums' derived `Deserialize` picks the variant by `tag`, then reads the
/// variant's fields from the remaining entries (through [`VariantFields`]).
struct TagFirst<'de, A> {
    tag: &'de str,
    map: A,
}

impl<'de, A: MapAccess<'de>> Deserializer<'de> for TagFirst<'de, A> {
    type Error = A::Error;
    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, A::Error> {
        Err(de::Error::custom("fast decode: only enums"))
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        visitor.visit_enum(self)
    }
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct identifier
        ignored_any
    }
}

impl<'de, A: MapAccess<'de>> de::EnumAccess<'de> for TagFirst<'de, A> {
    type Error = A::Error;
    type Variant = Rest<A>;
    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Rest<A>), A::Error> {
        let variant = seed.deserialize(de::value::BorrowedStrDeserializer::new(self.tag))?;
        Ok((variant, Rest(self.map)))
    }
}

/// The entries after the tag.
struct Rest<A>(A);

impl<'de, A: MapAccess<'de>> de::VariantAccess<'de> for Rest<A> {
    type Error = A::Error;
    fn unit_variant(self) -> Result<(), A::Error> {
        Err(de::Error::custom("fast decode: no unit variants"))
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, _: T) -> Result<T::Value, A::Error> {
        Err(de::Error::custom("fast decode: no newtype variants"))
    }
    fn tuple_variant<V: Visitor<'de>>(self, _: usize, _: V) -> Result<V::Value, A::Error> {
        Err(de::Error::custom("fast decode: no tuple variants"))
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        visitor.visit_map(VariantFields {
            map: self.0,
            fields,
        })
    }
}

/// A variant's entries, refusing any key that is not one of its fields (see the module docs:
/// serde would ignore an unknown key but refuse a second tag or envelope key, so the fast
/// path leaves all of them to serde).
struct VariantFields<A> {
    map: A,
    fields: &'static [&'static str],
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for VariantFields<A> {
    type Error = A::Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        self.map.next_key_seed(KnownKey {
            fields: self.fields,
            seed,
        })
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
    }
    fn size_hint(&self) -> Option<usize> {
        self.map.size_hint()
    }
}

struct KnownKey<K> {
    fields: &'static [&'static str],
    seed: K,
}

impl<'de, K: DeserializeSeed<'de>> DeserializeSeed<'de> for KnownKey<K> {
    type Value = K::Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<K::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, K: DeserializeSeed<'de>> Visitor<'de> for KnownKey<K> {
    type Value = K::Value;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("one of the variant's field names")
    }
    fn visit_str<E: de::Error>(self, key: &str) -> Result<K::Value, E> {
        if !self.fields.contains(&key) {
            return Err(E::custom("fast decode: not a field of this variant"));
        }
        self.seed.deserialize(key.into_deserializer())
    }
}

/// Declares a mirror of an internally tagged enum as an externally tagged one (same variant
/// names, same fields, types and `default` attributes; unit variants as empty struct
/// variants) and its conversion to the real enum.
macro_rules! mirror {
    ($mirror:ident => $real:ident {
        $( $variant:ident { $( $(#[$attr:meta])* $field:ident : $ty:ty ),* $(,)? } ),* $(,)?
    }) => {
        #[derive(Deserialize)]
        #[serde(rename_all = "snake_case")]
        enum $mirror {
            $( $variant { $( $(#[$attr])* $field: $ty ),* } ),*
        }
        impl From<$mirror> for $real {
            fn from(m: $mirror) -> $real {
                match m {
                    $( $mirror::$variant { $($field),* } => $real::$variant { $($field: $field.into()),* } ),*
                }
            }
        }
    };
}

mirror!(MirrorCommand => Command {
    CreateOrder {
        merchant_reference: String,
        amount: Money,
        provider: Provider,
        capture_mode: CaptureMode,
        #[serde(default)] expires_at: OptTs,
        #[serde(default)] merchant_account: Option<String>,
        #[serde(default)] metadata: BTreeMap<String, String>,
    },
    StartPayment { #[serde(default)] initiation: PaymentInitiation },
    Capture { #[serde(default)] amount: Option<Money> },
    Cancel { #[serde(default)] reason: Option<String> },
    Refund { #[serde(default)] amount: Option<Money> },
    ConfirmTransfer { reference: String, attachment: Attachment },
    Expire {},
    ResolveReview { operator: String, reason: String },
    ProviderSignal { signal: FastSignal },
});

mirror!(MirrorSignalKind => SignalKind {
    Accepted { #[serde(default)] action: Option<CustomerAction> },
    Authorized { #[serde(default)] amount: Option<Money> },
    Captured { #[serde(default)] amount: Option<Money> },
    Failed {
        operation: Operation,
        code: String,
        message: String,
        #[serde(default)] refund_id: Option<String>,
    },
    Cancelled {},
    Refunded {
        #[serde(default)] refund_id: Option<String>,
        #[serde(default)] amount: Option<Money>,
    },
    Settled { #[serde(default)] amount: Option<Money> },
    Unrecognised { raw_status: String },
    OutcomeUnknown { operation: Operation, detail: String },
    NeedsReview { reason: String },
    Probed { answer: String },
});

mirror!(MirrorEvent => Event {
    OrderCreated {
        order_id: OrderId,
        merchant_reference: String,
        amount: Money,
        provider: Provider,
        capture_mode: CaptureMode,
        #[serde(default)] expires_at: OptTs,
        #[serde(default)] merchant_account: Option<String>,
        #[serde(default)] metadata: BTreeMap<String, String>,
        created_at: FastTs,
    },
    PaymentRequested { initiation: PaymentInitiation },
    CustomerActionRequired {
        #[serde(default)] action: Option<CustomerAction>,
        evidence: FastEvidence,
    },
    PaymentAuthorized { amount: Money, evidence: FastEvidence },
    CaptureRequested { capture_id: String, amount: Money },
    PaymentCaptured { amount: Money, evidence: FastEvidence },
    CaptureFailed { code: String, message: String, evidence: FastEvidence },
    CancelRequested { #[serde(default)] reason: Option<String> },
    OrderCancelled {
        by: CancelledBy,
        #[serde(default)] evidence: Option<Evidence>,
    },
    CancelFailed { code: String, message: String, evidence: FastEvidence },
    TransferConfirmationSubmitted {
        confirmation_id: String,
        reference: String,
        attachment: Attachment,
    },
    RefundRequested { refund_id: String, amount: Money },
    RefundCompleted { refund_id: String, amount: Money, evidence: FastEvidence },
    RefundFailed { refund_id: String, code: String, message: String, evidence: FastEvidence },
    OrderSettled { evidence: FastEvidence },
    PaymentFailed { code: String, message: String, evidence: FastEvidence },
    SignalRecorded { signal: FastSignal, disposition: SignalDisposition },
    DiscrepancyDetected { signal: FastSignal, code: String, detail: String },
    ReviewResolved { operator: String, reason: String },
    CommandRejected { code: RejectionCode, message: String },
});

#[cfg(test)]
pub(crate) mod tests;
